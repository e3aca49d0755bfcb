"""Pages common to every host: the portal, a commune's home, health probes."""
