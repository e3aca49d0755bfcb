"""People, their roles in each commune, sessions, second factor and API tokens."""
