"""The intercommunal console (admin.<base domain>), for platform administrators."""
