"""S3 readers: interrupt() makes a read blocked on a stalled server return, and is harmless after."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from saas.storage import StorageError
from saas.storage.s3 import S3Store


class StalledServer:
    """An 'S3 server' that answers a GET with headers and a first piece of body, then stalls."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                         b"Content-Length: 10000000\r\nETag: \"abc\"\r\n\r\n" + b"x" * 1000)

    def close(self):
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def stalled():
    server = StalledServer()
    yield server
    server.close()


def test_interrupt_unblocks_a_read_from_a_stalled_server(stalled):
    store = S3Store(f"127.0.0.1:{stalled.port}", "key", "secret", read_timeout=60)
    reader = store.get("commune-a", "k")
    outcome = []

    def read_all():
        try:
            for _chunk in reader:
                pass
            outcome.append("ended")
        except StorageError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read_all)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # blocked in recv: the server sends nothing more
    started = time.monotonic()
    reader.interrupt()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert outcome and outcome[0] != "ended"  # a truncated read is an error, not an end
    reader.close()
    reader.interrupt()  # after close: nothing to interrupt, no error


def test_interrupt_after_a_complete_read_is_harmless(store, commune_a):
    import io

    store.put(commune_a, "k", io.BytesIO(b"abc"))
    reader = store.get(commune_a, "k")
    assert reader.read_all() == b"abc"
    reader.interrupt()
    # The connection went back to the pool untouched: the next request works.
    assert store.get(commune_a, "k").read_all() == b"abc"
