"""Slow bodies against a real `saas serve` (gunicorn, 2 workers × 4 threads).

Connections that announce a body and then trickle it a byte at a time used to hold every
gunicorn thread for as long as they liked: /healthz and the login pages stopped answering.
The body must now arrive within SAAS_HTTP_BODY_TIMEOUT (saas/bodies.py): the trickling
connections are answered 408 and closed, and the other requests are served meanwhile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAAS = str(Path(sys.executable).with_name("saas"))
BODY_TIMEOUT = 2.0
SLOW_CONNECTIONS = 12  # more than the 8 threads of `saas serve`'s two workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "localhost"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAAS_")}
    env.update(SAAS_INSTANCE_PATH=str(tmp_path / "instance"),
               SAAS_HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT), SAAS_JOBS_EMBEDDED_RUNNER="off")
    subprocess.run([SAAS, "init"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([SAAS, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz", 2) == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "saas serve did not start"
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            sock.sendall(b"a")
        except OSError:
            return
        stop.wait(0.5)


@pytest.mark.slow
def test_slow_bodies_do_not_stop_healthz_nor_the_login_page(server):
    port = server
    stop = threading.Event()
    sockets = []
    for _ in range(SLOW_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100000\r\n\r\nemail=")
        sockets.append(sock)
        threading.Thread(target=_trickle, args=(sock, stop), daemon=True).start()
    try:
        time.sleep(0.5)  # every thread is now reading a trickling body
        started = time.monotonic()
        # Bounded: at worst a thread frees itself once a slow body's budget is spent.
        assert _get(port, "/healthz", timeout=4 * BODY_TIMEOUT + 5) == 200
        assert _get(port, "/auth/login", timeout=4 * BODY_TIMEOUT + 5) == 200
        assert time.monotonic() - started < 4 * BODY_TIMEOUT + 5

        # Every trickling connection was answered 408 and closed by the server.
        for sock in sockets:
            sock.settimeout(BODY_TIMEOUT + 10)
            received = b""
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except ConnectionResetError:
                pass
            assert received == b"" or received.startswith(b"HTTP/1.1 408"), received[:200]
        assert time.monotonic() - started < 3 * BODY_TIMEOUT + 10
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
