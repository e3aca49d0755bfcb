"""File-like sources for storage tests that generate their bytes instead of holding them."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

_BLOCK = 64 * 1024


class SourceFailure(RuntimeError):
    """Raised by a PatternStream told to fail, as a broken upload would."""


def pattern_blocks(size: int, seed: int = 0) -> Iterator[bytes]:
    """Yield `size` deterministic bytes in 64 KiB blocks, each block distinct."""
    base = random.Random(seed).randbytes(_BLOCK)
    index = 0
    remaining = size
    while remaining > 0:
        # The block number up front makes every block different, so reordering shows.
        block = index.to_bytes(8, "big") + base[8:]
        yield block[:remaining]
        remaining -= min(remaining, _BLOCK)
        index += 1


def pattern_sha256(size: int, seed: int = 0) -> str:
    """Return the SHA-256 of pattern_blocks(size, seed), computed by streaming."""
    digest = hashlib.sha256()
    for block in pattern_blocks(size, seed):
        digest.update(block)
    return digest.hexdigest()


class PatternStream:
    """A read()-able stream over pattern_blocks; never holds more than one read's worth.

    `fail_at` makes read() raise SourceFailure once that many bytes have been served;
    `position` and `max_request` let tests see how the store consumes the stream.
    """

    def __init__(self, size: int, seed: int = 0, fail_at: int | None = None):
        self._blocks = pattern_blocks(size, seed)
        self._leftover = b""
        self.size = size
        self.fail_at = fail_at
        self.position = 0
        self.max_request = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.position
        self.max_request = max(self.max_request, n)
        if self.fail_at is not None and self.position + n > self.fail_at:
            raise SourceFailure(f"source broke at byte {self.fail_at}")
        parts = []
        wanted = n
        if self._leftover:
            parts.append(self._leftover[:wanted])
            self._leftover = self._leftover[wanted:]
            wanted -= len(parts[0])
        while wanted > 0:
            block = next(self._blocks, None)
            if block is None:
                break
            parts.append(block[:wanted])
            self._leftover = block[wanted:]
            wanted -= len(parts[-1])
        data = b"".join(parts)
        self.position += len(data)
        return data
