"""The README's first command, end to end: the embedded default through the real `saas` script.

Runs what `make run` runs (init, demo load, serve under gunicorn) in a fresh instance folder with
no SAAS_* service variable, then uses the platform over HTTP: pages on the portal and a commune,
and a document upload whose text extraction job must run in-process (no Redis here).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAAS = str(Path(sys.executable).with_name("saas"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
    env["SAAS_INSTANCE_PATH"] = str(tmp_path / "instance")
    return env


def _run(env, *args, input: str | None = None) -> str:
    done = subprocess.run([SAAS, *args], env=env, cwd=ROOT, input=input, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"saas {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _http(method: str, url: str, host: str, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Host": host, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----mutualis-quickstart"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: text/plain\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
def test_make_run_path_serves_the_demo_and_runs_jobs_in_process(embedded_env):
    assert "schéma à jour" in _run(embedded_env, "init")
    demo = _run(embedded_env, "demo", "load", "tenants")
    assert "5 created" in demo and "http://montclair.localhost:8000/" in demo
    _run(embedded_env, "users", "create", "--tenant", "montclair", "--email", "essai@example.org",
         "--name", "Essai Agent", "--role", "agent", "--password-stdin",
         input="Un-mot-de-passe-solide-42\n")
    token = _run(embedded_env, "tokens", "create", "--tenant", "montclair",
                 "--email", "essai@example.org").strip().splitlines()[-1]

    port = _free_port()
    server = subprocess.Popen([SAAS, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                              env=embedded_env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _http("GET", base + "/healthz", "localhost")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "saas serve did not start"
            time.sleep(0.2)

        status, page = _http("GET", base + "/", "localhost:8000")
        assert status == 200 and "Montclair-sur-Loire" in page.decode()
        status, page = _http("GET", base + "/auth/login", "montclair.localhost:8000")
        assert status == 200 and "Connexion" in page.decode()

        auth = {"Authorization": f"Bearer {token}"}
        body, ctype = _multipart({"title": "Compte rendu", "type": "courrier"}, "cr.txt",
                                 "Réfection de la toiture de l'église communale.".encode())
        status, answer = _http("POST", base + "/api/v1/documents", "montclair.localhost:8000",
                               body, {**auth, "Content-Type": ctype})
        assert status == 201, answer

        # "eglise" (no accent) is only in the file's text: found once the extraction job ran
        # in-process, since nothing else runs jobs here.
        deadline = time.monotonic() + 30
        while True:
            status, answer = _http("GET", base + "/api/v1/documents?q=eglise",
                                   "montclair.localhost:8000", headers=auth)
            assert status == 200, answer
            if json.loads(answer)["total"] == 1:
                break
            assert time.monotonic() < deadline, "the extraction job never ran in embedded mode"
            time.sleep(0.5)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
