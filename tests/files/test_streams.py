"""The streaming multipart reader returns the file byte for byte, whatever the read sizes."""

from __future__ import annotations

import io
import os

import pytest

from saas.files.streams import FormError, HeadThenStream, StreamingForm, read_head


@pytest.mark.parametrize("size", [1, 65_535, 65_536, 70_000, 1024 * 1024 + 3, 3_000_000])
def test_file_part_round_trips(size):
    content = os.urandom(size)
    body = (b'--B\r\nContent-Disposition: form-data; name="title"\r\n\r\nTitre\r\n'
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + content + b'\r\n--B\r\nContent-Disposition: form-data; name="tags"\r\n\r\na,b\r\n--B--\r\n')
    form = StreamingForm(io.BytesIO(body), "multipart/form-data; boundary=B")
    assert form.read_until_file()
    assert form.get("title") == "Titre" and form.filename == "g.bin"
    head = read_head(form, 65_536)
    stream = HeadThenStream(head, form)
    out = []
    while chunk := stream.read(100_000):
        out.append(chunk)
    assert b"".join(out) == content
    form.finish()
    assert form.get("tags") == "a,b"


# -- the file part's end, found by our scanner, exactly where werkzeug's decoder finds it ---------

class Trickle:
    """A stream that returns random, often short reads (as a socket does)."""

    def __init__(self, data: bytes, rng):
        self._data = io.BytesIO(data)
        self._rng = rng

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._rng.choice((1, 2, 7, 100, 4096, 65_536, size)))


def reference_parse(body: bytes, boundary: bytes):
    """werkzeug's decoder over the whole body at once: ([(name, value)], file bytes)."""
    from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder

    decoder = MultipartDecoder(boundary)
    decoder.receive_data(body)
    decoder.receive_data(None)
    fields, file, current, buffer = [], None, None, bytearray()
    while True:
        event = decoder.next_event()
        if isinstance(event, Epilogue):
            return fields, file
        if isinstance(event, File):
            current, file = None, bytearray()
        elif isinstance(event, Field):
            current = event.name
        elif isinstance(event, Data):
            if current is None:
                file += event.data
            else:
                buffer += event.data
                if not event.more_data:
                    fields.append((current, bytes(buffer).decode()))
                    buffer.clear()


def tricky_content(rng, boundary: bytes, size: int) -> bytes:
    """Random bytes salted with near-delimiters that must stay data."""
    dash = b"--" + boundary
    traps = [
        dash + b"\r\n",                 # no line break before it
        b"\r\n" + dash + b"x",          # not followed by a line break or "--"
        b"\r\n" + dash + b" \t x",      # padding, then something else
        b"\r\n" + dash + b"-x",         # one dash is no closing delimiter
        b"\n" + dash[:-1] + b"\r\n",    # the boundary cut short
        b"\r\n-" + dash,                # one dash too many before it
        b"\r", b"\n", b"\r\n", b"\r\n-", b"\r\n--", dash,
    ]
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.3:
            # Fenced by bytes that are no line break, so that traps never join into a delimiter.
            out += b"x" + rng.choice(traps) + b"x"
        else:
            out += rng.randbytes(rng.randint(1, 3000))
    return bytes(out[:size])


@pytest.mark.parametrize("seed", range(60))
def test_scanner_agrees_with_werkzeug(seed):
    import random

    rng = random.Random(seed)
    boundary = rng.choice([b"B", b"-B-", b"BenchBoundary", b"----WebKitFormBoundary7MA4YWxkTrZu0gW"])
    dash = b"--" + boundary
    breaks = [b"\r\n", b"\n", b"\r"]
    size = rng.choice([0, 1, 5000, 1024 * 1024 - 3, 1024 * 1024 + 70_000, 2_500_000])
    content = tricky_content(rng, boundary, size)
    # The delimiter closing the file part: a line break, maybe padding, then a field or the end.
    end = rng.choice(breaks) + dash
    after = []
    if rng.random() < 0.6:
        end += rng.choice([b"", b" ", b"\t \t"]) + rng.choice(breaks)
        end += b'Content-Disposition: form-data; name="tags"\r\n\r\na,b\r\n' + dash
        after.append(("tags", "a,b"))
    end += b"--\r\n"
    body = (dash + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nTitre\r\n'
            + dash + b'\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + content + end)

    # Traps side by side can make a real delimiter: whatever werkzeug's decoder reads in the
    # whole body, ours must read from a trickle of short reads, failures included.
    try:
        expected = reference_parse(body, boundary)
    except Exception:
        expected = None
    form = StreamingForm(Trickle(body, rng), "multipart/form-data; boundary=" + boundary.decode())
    try:
        assert form.read_until_file()
        got = []
        while chunk := form.read(rng.choice((1, 1000, 1024 * 1024))):
            got.append(chunk)
        form.finish()
    except FormError:
        assert expected is None
        return
    assert expected is not None
    fields, file = expected
    assert b"".join(got) == bytes(file)
    assert [("title", form.get("title"))] + [(k, form.get(k)) for k in ("tags",) if form.get(k)] \
        == fields
    if fields == [("title", "Titre"), *after]:
        assert bytes(file) == content


@pytest.mark.parametrize("line_break", [b"\r\n", b"\n", b"\r"])
@pytest.mark.parametrize("boundary", [b"B", b"----WebKitFormBoundary7MA4YWxkTrZu0gW"])
def test_delimiter_split_across_reads_at_every_offset(line_break, boundary):
    class SplitAt:
        def __init__(self, data: bytes, cuts: list[int]):
            self.data, self.cuts, self.pos = data, cuts, 0

        def read(self, size: int = -1) -> bytes:
            stop = next((c for c in self.cuts if c > self.pos), len(self.data))
            chunk = self.data[self.pos:min(stop, self.pos + size)]
            self.pos += len(chunk)
            return chunk

    dash = b"--" + boundary
    head = dash + b'\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
    content = os.urandom(200_000).replace(b"\r", b"r").replace(b"\n", b"n") + b"\r"
    tail = line_break + dash + b"  \r\n" + b'Content-Disposition: form-data; name="t"\r\n\r\nv\r\n' \
        + dash + b"--\r\n"
    body = head + content + tail
    end = len(head) + len(content)
    # A content ending in CR before an LF delimiter loses it: "\r\n--B" is the delimiter.
    expected = bytes(reference_parse(body, boundary)[1])
    assert expected == (content[:-1] if line_break == b"\n" else content)
    for cut in range(end - 4, end + len(line_break) + len(dash) + 5):
        form = StreamingForm(SplitAt(body, [len(head) + 10, cut]),
                             "multipart/form-data; boundary=" + boundary.decode())
        assert form.read_until_file()
        got = []
        while chunk := form.read(1024 * 1024):
            got.append(chunk)
        assert b"".join(got) == expected, cut
        form.finish()
        assert form.get("t") == "v"


def test_truncated_file_part_is_refused():
    content = os.urandom(3_000_000)
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + content)
    form = StreamingForm(io.BytesIO(body), "multipart/form-data; boundary=B")
    assert form.read_until_file()
    with pytest.raises(FormError) as caught:
        while form.read(1024 * 1024):
            pass
    assert caught.value.code == "truncated_body"


def test_too_many_parts_after_the_file_are_still_counted():
    fields = b"".join(b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i
                      for i in range(70))
    body = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="g.bin"\r\n\r\n'
            + os.urandom(2_000_000) + b"\r\n" + fields + b"--B--\r\n")
    form = StreamingForm(io.BytesIO(body), "multipart/form-data; boundary=B")
    assert form.read_until_file()
    while form.read(1024 * 1024):
        pass
    with pytest.raises(FormError) as caught:
        form.finish()
    assert caught.value.code == "too_many_parts"
