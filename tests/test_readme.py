"""The README as a new user reads it: its example commune exists, its links stay in the
repository, and what it tells about the demo accounts and mail is true."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from saas.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_example_communes_exist_in_tenants():
    slugs = set(re.findall(r"https?://([a-z0-9-]+)\.localhost", README)) - {"admin"}
    assert slugs, "the README shows no commune address"
    for slug in slugs:
        assert (ROOT / "tenants" / f"{slug}.toml").is_file(), f"{slug}: no tenants/{slug}.toml"


def test_no_link_leaves_the_repository():
    for target in re.findall(r"\]\(([^)]+)\)|`(\.\./[^`]+)`", README):
        path = next(t for t in target if t)
        if re.match(r"[a-z]+://|#|mailto:", path):
            continue
        assert not path.startswith("../"), f"the README points outside the repository: {path}"
        assert (ROOT / path.split("#")[0]).exists(), f"the README links a missing file: {path}"
    assert "../shared" not in README


def test_the_options_and_paths_the_readme_promises_exist():
    assert "--reset-passwords" in README
    demo_help = CliRunner().invoke(main, ["demo", "load", "--help"]).output
    assert "--reset-passwords" in demo_help
    assert "application d'authentification" in README
    assert "instance/outbox/" in README and "/api/v1/openapi.json" in README
