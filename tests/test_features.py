"""saas/features.py is the one list of features: the web app and the workers are built from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import saas
from saas.features import FEATURES

REPO = Path(__file__).resolve().parents[1]
SAAS_DIR = Path(saas.__file__).parent
SAAS_CLI = str(Path(sys.executable).with_name("saas"))
# Modules that make a package a feature (STYLE.md, "Feature packages").
FEATURE_MODULES = ("views.py", "api.py", "tasks.py", "routes.py")
# Builds the API blueprint from the operations the features offer, after them (wiring.py).
NOT_FEATURES = {"saas.api"}
EXTRA_MODULE = "tests.jobs.sample_tasks"


def _is_feature(package: Path) -> bool:
    if any((package / name).exists() for name in FEATURE_MODULES):
        return True
    return any("Blueprint(" in module.read_text(encoding="utf-8") for module in package.glob("*.py"))


def test_every_package_with_pages_api_or_job_kinds_is_in_the_feature_list():
    packages = {f"saas.{d.name}" for d in SAAS_DIR.iterdir()
                if (d / "__init__.py").exists() and _is_feature(d)} - NOT_FEATURES
    assert {"saas.auth", "saas.ged", "saas.jobs", "saas.ops"} <= packages
    assert sorted(packages - set(FEATURES)) == [], "add them to saas/features.py"


def _kinds_of(command: list[str], tmp_path: Path) -> list[str]:
    """Run `command` in a fresh interpreter, as a deployment would; its output lines, sorted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
    env.update({"SAAS_INSTANCE_PATH": str(tmp_path / "instance"),
                "SAAS_EXTRA_JOB_MODULES": EXTRA_MODULE, "PYTHONPATH": str(REPO)})
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return sorted(line.split("\t")[0] for line in done.stdout.splitlines() if line)


_PRINT_KINDS = "from saas.jobs.registry import KINDS; print('\\n'.join(KINDS))"


def test_a_worker_process_knows_exactly_the_job_kinds_of_the_web_app(tmp_path):
    worker = _kinds_of([SAAS_CLI, "worker", "--list-kinds"], tmp_path)
    web = _kinds_of([sys.executable, "-c", f"import wsgi; {_PRINT_KINDS}"], tmp_path)
    # What the code declares: every `saas/<package>/tasks.py`, whatever the feature list says.
    modules = [f"saas.{path.parent.name}.tasks" for path in sorted(SAAS_DIR.glob("*/tasks.py"))]
    declared = _kinds_of([sys.executable, "-c", "; ".join(
        [f"import {name}" for name in [*modules, EXTRA_MODULE]] + [_PRINT_KINDS])], tmp_path)
    assert "jobs.purge" in declared and "ged.extract_text" in declared and "test.echo" in declared
    assert worker == web
    assert worker == declared, "a feature's job kinds are missing: is it in saas/features.py?"
