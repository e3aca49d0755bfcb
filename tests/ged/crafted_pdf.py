"""A hostile PDF built in memory: many pages sharing one big content stream."""

from __future__ import annotations

import zlib


def shared_stream_pdf(pages: int, stream_bytes: int) -> bytes:
    """`pages` pages whose /Contents is one Flate stream of about `stream_bytes` text operators.

    Each page costs a parse of the whole stream; the file stays small (the stream compresses
    to almost nothing). 2,000 pages × 4.8 MB make a file of about 330 KB.
    """
    # Text operators that show nothing: every page parses them all, and no text budget stops it.
    line = b"BT /F1 12 Tf () Tj ET\n"
    content = line * max(1, stream_bytes // len(line))
    packed = zlib.compress(content, 9)
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed
        + b"\nendstream",
    ]
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>")
    objects += [page] * pages
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
