"""Append-only, hash-chained audit log: one chain per tenant, one for the platform."""
