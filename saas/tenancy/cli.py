"""`saas tenants …` (being built)."""

import click

tenants_group = click.Group("tenants", help="Collectivités hébergées.")
