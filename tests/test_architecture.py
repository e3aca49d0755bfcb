"""The import-linter contracts of pyproject.toml: they hold, and they do catch a wrong import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([LINT_IMPORTS, str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_against_the_layers_breaks_the_contracts(tmp_path):
    shutil.copytree(REPO / "saas", tmp_path / "saas",
                    ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    context = tmp_path / "saas" / "tenancy" / "context.py"
    context.write_text(context.read_text() + "\nfrom saas.ged import views  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "saas.tenancy is not allowed to import saas.ged" in result.stdout, result.stdout
