"""The platform's recurring work on the audit chains: anchoring their heads outside the database.

Declared here rather than in saas.audit, which sits below the job system.
"""

from __future__ import annotations

from saas.audit.anchors import anchor_all
from saas.jobs import QueueNames, job_kind, periodic

# Entries written after the last anchor can still be removed unseen: the interval is that window.
ANCHOR_EVERY_SECONDS = 3600


@job_kind("audit.anchor", queue=QueueNames.MAINTENANCE, platform=True, timeout=900,
          max_attempts=3, backoff=60)
def anchor_chains() -> dict:
    """Write every chain's head (commune by commune, then the platform's) to logs and storage."""
    return anchor_all()


periodic("audit.anchor", "audit.anchor", every=ANCHOR_EVERY_SECONDS)
