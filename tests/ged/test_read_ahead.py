"""ReadAhead: a helper thread reads an upload ahead; bytes, errors and stopping are kept intact."""

from __future__ import annotations

import io
import os
import threading

import pytest

from saas.ged.streams import ReadAhead, StreamingForm


def test_bytes_come_through_in_order_whatever_the_read_sizes():
    content = os.urandom(3 * 1024 * 1024 + 17)
    ahead = ReadAhead(io.BytesIO(content), chunk=65_536, depth=4)
    got, sizes = [], [1, 10, 70_000, 65_536, -1, 1 << 20]
    while data := ahead.read(sizes[len(got) % len(sizes)]):
        got.append(data)
    assert b"".join(got) == content
    assert ahead.read(10) == b""  # stays at the end
    ahead.close()
    assert not ahead._thread.is_alive()


def test_a_multipart_file_part_read_ahead_then_the_fields_after_it():
    content = os.urandom(2_000_000)
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + content + b'\r\n--B\r\nContent-Disposition: form-data; name="tags"\r\n\r\na,b\r\n--B--\r\n')
    form = StreamingForm(io.BytesIO(body), "multipart/form-data; boundary=B")
    assert form.read_until_file()
    ahead = ReadAhead(form, chunk=100_000, depth=3)
    parts = []
    while data := ahead.read(1 << 20):
        parts.append(data)
    ahead.close()
    assert b"".join(parts) == content
    form.finish()  # the helper thread is done: the form is ours again
    assert form.get("tags") == "a,b"


def test_source_errors_reach_the_reader():
    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.calls += 1
            if self.calls == 3:
                raise ConnectionResetError("client went away")
            return b"x" * size

    ahead = ReadAhead(Broken(), chunk=10, depth=2)
    assert ahead.read(100) == b"x" * 10
    assert ahead.read(100) == b"x" * 10
    with pytest.raises(ConnectionResetError):
        ahead.read(100)
    ahead.close()


def test_close_stops_reading_ahead():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.reads = 0
            self.lock = threading.Lock()

        def readable(self):
            return True

        def read(self, size=-1):
            with self.lock:
                self.reads += 1
            return b"y" * size

    source = Endless()
    ahead = ReadAhead(source, chunk=1000, depth=2)
    assert ahead.read(1000) == b"y" * 1000
    ahead.close()
    assert not ahead._thread.is_alive()
    stopped_at = source.reads
    assert stopped_at <= 5  # one read, the queue (2), and the read it was blocked after
    threading.Event().wait(0.3)
    assert source.reads == stopped_at
