"""`saas users` and `saas tokens` (being built)."""

import click

users_group = click.Group("users", help="Comptes utilisateurs.")
tokens_group = click.Group("tokens", help="Jetons d'API.")
