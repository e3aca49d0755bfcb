"""The queue registry is the deployment's contract: workers run for exactly these queues."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from saas.jobs.registry import KINDS, QUEUES, QueueNames, queue_names

ROLE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "mutualis"


def test_ansible_starts_workers_for_exactly_the_registry_queues():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    deployed = [q["name"] for q in defaults["mutualis_worker_queues"]]
    assert sorted(deployed) == sorted(queue_names())
    assert len(deployed) == len(set(deployed))
    assert all(int(q["jobs"]) >= 1 for q in defaults["mutualis_worker_queues"])


def test_the_worker_unit_serves_its_instance_queue_with_a_warm_shutdown():
    unit = (ROLE / "templates" / "mutualis-worker@.service.j2").read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    assert "saas worker" in exec_start and "--queue %i" in exec_start
    assert re.search(r"^KillMode=mixed$", unit, re.M)  # SIGTERM to the supervisor only
    tasks = (ROLE / "tasks" / "workers.yml").read_text()
    assert "mutualis-worker@{{ item.name }}.service" in tasks
    assert "loop: \"{{ mutualis_worker_queues }}\"" in tasks


def test_queue_names_constants_match_the_registry():
    constants = {v for k, v in vars(QueueNames).items() if k.isupper()}
    assert constants == set(QUEUES)


def test_every_declared_kind_uses_a_registered_queue(app):
    assert "jobs.purge" in KINDS
    assert all(kind.queue in QUEUES for kind in KINDS.values())


def test_cli_lists_the_registry(cli):
    result = cli("jobs", "queues")
    assert [line.split("\t")[0] for line in result.output.splitlines()] == queue_names()


def test_a_per_tenant_limit_leaves_workers_for_the_other_communes():
    # Otherwise one commune could hold every worker of the queue (its hostile documents).
    # The transmissions limit is the préfecture's connection count, not a fairness promise.
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    jobs = {q["name"]: int(q["jobs"]) for q in defaults["mutualis_worker_queues"]}
    limited = {name: spec.per_tenant_limit for name, spec in QUEUES.items()
               if spec.per_tenant_limit is not None and name != QueueNames.TRANSMISSIONS}
    assert QueueNames.DOCUMENTS in limited
    assert all(jobs[name] > limit for name, limit in limited.items())
