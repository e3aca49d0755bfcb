"""`saas audit verify` (being built)."""

import click

audit_group = click.Group("audit", help="Journal d'audit.")
