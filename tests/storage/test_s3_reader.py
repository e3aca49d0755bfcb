"""S3 readers: a stalled server ends the read with an error; connections are reused."""

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


def test_a_read_from_a_stalled_server_fails_after_the_read_timeout(stalled):
    store = S3Store(f"127.0.0.1:{stalled.port}", "key", "secret", read_timeout=0.5,
                    connect_retries=0)
    reader = store.get("commune-a", "k")
    started = time.monotonic()
    received = 0
    with pytest.raises(StorageError):
        for chunk in reader:
            received += len(chunk)
    # A truncated read is an error, never a short but "complete" object.
    assert received < 10_000_000 and time.monotonic() - started < 5
    reader.close()
    reader.close()  # twice: harmless


def test_complete_reads_give_the_connection_back_to_the_pool(store, commune_a):
    import io

    def connections() -> int:
        if not isinstance(store, S3Store):
            return 0
        return sum(pool.num_connections for pool in store._http.pools._container.values())

    store.put(commune_a, "k", io.BytesIO(b"abc" * 500_000))
    opened = connections()
    for _ in range(3):
        reader = store.get(commune_a, "k")
        assert reader.read_all() == b"abc" * 500_000
    assert connections() == opened  # no new connection (a TLS handshake each, on MinIO)


def test_an_abandoned_read_drops_its_connection(store, commune_a):
    import io

    store.put(commune_a, "k", io.BytesIO(b"x" * 3_000_000))
    reader = store.get(commune_a, "k")
    assert len(next(iter(reader))) > 0
    reader.close()  # the rest is never read: the connection cannot serve another request
    assert store.get(commune_a, "k").read_all() == b"x" * 3_000_000
