"""Tenants (communes and the intercommunality) and the walls that keep them apart."""
