"""Request bodies: how large, and how slowly, a client may send one.

Every request gets the platform-wide limits of `Settings.http` (a small body, form memory and
parts): Werkzeug refuses a larger Content-Length with 413 before reading a byte, and stops a
chunked body at the limit. An endpoint that legitimately streams large bodies (the uploads)
raises its own limit with `allow_large_body()`, after it has authenticated the caller and
before anything reads the body.

Under gunicorn, `BodyDeadline` also bounds the time a client may take to send its body, so
that a connection trickling a byte at a time cannot keep a server thread:

- each wait for the next bytes lasts at most `body_timeout` seconds (the socket timeout, as
  nginx's `client_body_timeout`);
- the time spent waiting for body bytes, in total, is at most `body_timeout` seconds, plus
  one second per `upload_min_rate` bytes received on the endpoints that allow a large body
  (a slow but steady upload goes on, a trickle does not). A watchdog thread shuts the socket
  for reading when that budget is spent, which ends any read in progress.

An expired body answers 408 and the connection is closed.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from flask import Request
from werkzeug.exceptions import RequestTimeout

ENVIRON_KEY = "saas.body_clock"


@dataclass(eq=False)  # identity: the watchdog keeps a set of them
class BodyClock:
    """The time budget of one request body (shared by the input wrapper and the watchdog)."""

    sock: socket.socket
    timeout: float
    min_rate: float | None = None  # bytes/s earning more time; None: `timeout` in total
    received: int = 0
    waited: float = 0.0  # seconds spent in finished reads
    read_started: float | None = None
    expired: bool = False

    def budget(self) -> float:
        extra = self.received / self.min_rate if self.min_rate else 0.0
        return self.timeout + extra

    def expires_at(self) -> float | None:
        """When the read in progress runs out of budget (monotonic), None when not reading."""
        if self.read_started is None:
            return None
        return self.read_started + self.budget() - self.waited

    def expire(self) -> None:
        self.expired = True
        try:
            # Ends a recv() blocked in another thread (it returns EOF); the answer can still
            # be written, and gunicorn closes the connection since the body is unfinished.
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass


class _Watchdog:
    """One thread per process expiring the bodies whose budget is spent during a read."""

    def __init__(self) -> None:
        self._clocks: set[BodyClock] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def reading(self, clock: BodyClock) -> None:
        with self._cond:
            clock.read_started = time.monotonic()
            self._clocks.add(clock)
            if self._thread is None or not self._thread.is_alive():
                # Started on first use: in each gunicorn worker, after the fork.
                self._thread = threading.Thread(target=self._run, name="body-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def done(self, clock: BodyClock, got: int) -> None:
        with self._cond:
            if clock.read_started is not None:
                clock.waited += time.monotonic() - clock.read_started
            clock.read_started = None
            clock.received += got
            self._clocks.discard(clock)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                soonest = None
                for clock in list(self._clocks):
                    at = clock.expires_at()
                    if at is None:
                        continue
                    if at <= now:
                        clock.expire()
                        self._clocks.discard(clock)
                    elif soonest is None or at < soonest:
                        soonest = at
                self._cond.wait(timeout=None if soonest is None else max(soonest - now, 0.01))


_watchdog = _Watchdog()


class DeadlineInput:
    """wsgi.input read under a BodyClock: 408 once its budget is spent or a read times out."""

    def __init__(self, inner, clock: BodyClock):
        self._inner = inner
        self._clock = clock

    def _call(self, method, *args):
        clock = self._clock
        if clock.expired:
            raise RequestTimeout()
        _watchdog.reading(clock)
        data = b""
        try:
            clock.sock.settimeout(clock.timeout)
            data = method(*args)
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError) or clock.expired:
                clock.expire()
                raise RequestTimeout() from None
            raise
        finally:
            try:
                clock.sock.settimeout(None)
            except OSError:
                pass
            _watchdog.done(clock, len(data or b""))
        if clock.expired:
            raise RequestTimeout()
        return data

    def read(self, size: int = -1) -> bytes:
        return self._call(self._inner.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._call(self._inner.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)

    def __iter__(self):
        return iter(self.readline, b"")


class BodyDeadline:
    """WSGI middleware: the request body is read under a time budget (see the module doc)."""

    def __init__(self, app, *, timeout: float):
        self.app = app
        self.timeout = timeout

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            clock = BodyClock(sock=sock, timeout=self.timeout)
            environ[ENVIRON_KEY] = clock
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], clock)
        return self.app(environ, start_response)


def allow_large_body(request: Request, limit: int, *, min_rate: int) -> None:
    """Let this request's body reach `limit` bytes, sent at `min_rate` bytes/s on average.

    For authenticated upload endpoints only, before anything reads the body: a Content-Length
    over `limit` is refused with 413 at once, a chunked body is stopped at `limit`.
    """
    if "stream" in request.__dict__ or "form" in request.__dict__:
        # Too late: the body was opened (and perhaps read) under the platform-wide limit.
        raise RuntimeError("allow_large_body() must be called before the body is read")
    request.max_content_length = limit
    clock = request.environ.get(ENVIRON_KEY)
    if clock is not None:
        clock.min_rate = float(min_rate)


def cap_body(request: Request, limit: int) -> None:
    """Lower this request's body limit to `limit` bytes (JSON bodies), before reading it."""
    current = request.max_content_length
    request.max_content_length = limit if current is None else min(current, limit)
