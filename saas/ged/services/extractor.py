"""The extraction child process: `python -m saas.ged.services.extractor REQUEST`.

REQUEST is a JSON object: the file to read (`input`), its sniffed `content_type`, where to
write the result (`output`), and the budgets: `cpu_seconds`, `memory_bytes`, `output_bytes`,
`max_chars`, `max_pages`. The process limits itself first (CPU time, address space, size of
the files it writes, no core dump, lowest useful priority), then reads the text and writes
`{"text": …}` or `{"code": …, "reason": …}` as JSON to `output`.

Past its CPU time the kernel ends it (SIGXCPU, then SIGKILL); out of memory it exits with
TOO_COMPLEX_EXIT; its parent (saas.ged.services.extraction) kills it at the wall-clock
deadline and turns each of those into "texte non extrait : document trop complexe".
Only `readers` is imported: no database, no job system, no settings, no secrets.
"""

from __future__ import annotations

import json
import os
import resource
import sys

# Exit status of a child that ran out of memory (its address-space budget).
TOO_COMPLEX_EXIT = 3
# Seconds of CPU between the soft limit (SIGXCPU, which ends the process) and the hard one
# (SIGKILL, should SIGXCPU ever be caught).
CPU_GRACE = 2
NICENESS = 10


def limit_self(cpu_seconds: int, memory_bytes: int, output_bytes: int) -> None:
    """Apply the budgets to this process (and any it would start)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + CPU_GRACE))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    try:
        os.nice(NICENESS)
    except OSError:  # pragma: no cover - a niceness is a courtesy, not a budget
        pass


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    limit_self(int(request["cpu_seconds"]), int(request["memory_bytes"]),
               int(request["output_bytes"]))
    try:
        from saas.ged.services import readers

        with open(request["input"], "rb") as source:
            try:
                result = {"text": readers.extract_text(source, request["content_type"],
                                                       max_chars=int(request["max_chars"]),
                                                       max_pages=int(request["max_pages"]))}
            except readers.ExtractionFailed as exc:
                result = {"code": exc.code, "reason": exc.reason}
        payload = json.dumps(result, ensure_ascii=False).encode("utf-8")
        with open(request["output"], "wb") as output:
            output.write(payload)
    except MemoryError:
        os._exit(TOO_COMPLEX_EXIT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
