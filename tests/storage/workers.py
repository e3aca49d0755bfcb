"""Functions run in child processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

import io
from pathlib import Path

from saas.storage.local import LocalStore


def put_many(root: str, prefix: str, key: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Put `count` distinct versions of `key`; return their (version_id, sha256)."""
    store = LocalStore(Path(root), bucket_prefix=prefix)
    written = []
    for i in range(count):
        info = store.put("commune-a", key, io.BytesIO(f"{seed}:{i};".encode() * 2000))
        written.append((info.version_id, info.sha256))
    return written
