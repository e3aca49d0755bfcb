"""The streaming multipart reader returns the file byte for byte, whatever the read sizes."""

from __future__ import annotations

import io
import os

import pytest

from saas.ged.streams import HeadThenStream, StreamingForm, read_head


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
