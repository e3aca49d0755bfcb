"""ReadAhead: a helper thread reads chunks ahead; bytes, errors and stopping are kept intact."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from saas.ged.streams import ReadAhead


def helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "test-ahead"]


def test_chunks_come_through_in_order_hashed_in_the_helper():
    chunks = [os.urandom(1000 + i) for i in range(50)]
    digest = hashlib.sha256()
    hashed_in: set[str] = set()

    def on_chunk(chunk):
        hashed_in.add(threading.current_thread().name)
        digest.update(chunk)

    ahead = ReadAhead(iter(chunks), depth=3, on_chunk=on_chunk, name="test-ahead")
    assert list(ahead) == chunks
    assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert hashed_in == {"test-ahead"}
    assert list(ahead) == []  # stays at the end
    ahead.close()
    assert helpers() == []


def test_reads_at_most_depth_chunks_ahead():
    taken = []

    def source():
        for i in range(100):
            taken.append(i)
            yield b"x" * 10

    ahead = ReadAhead(source(), depth=3, name="test-ahead")
    iterator = iter(ahead)
    next(iterator)
    time.sleep(0.3)
    # One given out, three queued, one read and waiting for room in the queue.
    assert len(taken) <= 5
    ahead.close()
    assert helpers() == []


def test_source_errors_reach_the_consumer_and_the_source_is_closed():
    closed = threading.Event()

    def source():
        try:
            yield b"a"
            yield b"b"
            raise ConnectionResetError("the store went away")
        finally:
            closed.set()

    ahead = ReadAhead(source(), depth=2, name="test-ahead")
    got = []
    with pytest.raises(ConnectionResetError):
        for chunk in ahead:
            got.append(chunk)
    assert got == [b"a", b"b"]
    assert closed.is_set()
    ahead.close()
    assert helpers() == []


def test_on_chunk_errors_reach_the_consumer():
    def boom(chunk):
        raise ValueError("bad chunk")

    ahead = ReadAhead(iter([b"a"]), on_chunk=boom, name="test-ahead")
    with pytest.raises(ValueError, match="bad chunk"):
        list(ahead)
    ahead.close()
    assert helpers() == []


def test_close_midway_stops_the_helper_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield b"y" * 1000
        finally:
            closed.set()

    ahead = ReadAhead(endless(), depth=2, name="test-ahead")
    iterator = iter(ahead)
    assert next(iterator) == b"y" * 1000
    started = time.monotonic()
    ahead.close()
    assert time.monotonic() - started < 2
    assert helpers() == []
    assert closed.is_set()  # the helper ran the source's clean-up before it ended
    ahead.close()  # twice is fine


def test_close_interrupts_a_stalled_source():
    release = threading.Event()
    interrupted = []

    def stalled():
        yield b"first"
        release.wait(60)  # a store that stopped sending
        if interrupted:
            raise ConnectionAbortedError("interrupted")
        yield b"never"

    def interrupt():
        interrupted.append(True)
        release.set()

    ahead = ReadAhead(stalled(), depth=2, interrupt=interrupt, name="test-ahead")
    iterator = iter(ahead)
    assert next(iterator) == b"first"
    time.sleep(0.1)
    started = time.monotonic()
    ahead.close()
    assert interrupted == [True]
    assert time.monotonic() - started < 2
    assert helpers() == []


def test_no_interrupt_once_the_end_was_seen():
    interrupted = []
    ahead = ReadAhead(iter([b"a", b"b"]), interrupt=lambda: interrupted.append(1),
                      name="test-ahead")
    assert b"".join(ahead) == b"ab"
    ahead.close()
    assert interrupted == []
    assert helpers() == []
