"""Client address as seen behind the platform's own reverse proxy."""

from flask import request


def client_ip() -> str:
    # ProxyFix (configured in create_app) has already rewritten remote_addr when a proxy is trusted.
    return request.remote_addr or "0.0.0.0"
