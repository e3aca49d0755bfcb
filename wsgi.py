"""WSGI entry point: `gunicorn wsgi:app`."""

from saas import create_app

app = create_app()
