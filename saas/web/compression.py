"""Compressed pages and JSON for clients that accept gzip.

Only whole, in-memory bodies are compressed: never a streamed response (file downloads, exports,
tus), a partial one (Range / 206), one already encoded, one marked `no-transform`, nor a type
that is compressed already (PDF, images, archives). Static assets are precompressed at startup
(saas/web/assets.py) and pass untouched here.

Pages carry a CSRF token next to text a visitor may choose (search terms): to blunt BREACH, each
gzip stream carries a random-length file name in its header (as Django does), so the compressed
length no longer reveals how well a guess matched.
"""

from __future__ import annotations

import gzip
import io
import secrets

from flask import Flask, Response, request

from saas.web.assets import accepts_gzip

MIN_SIZE = 1024  # below this, gzip's overhead is not worth a round of CPU
TYPES = {"text/html", "application/json", "application/problem+json", "text/plain", "text/css",
         "text/csv", "application/xml", "text/xml", "image/svg+xml", "text/javascript",
         "application/javascript", "application/vnd.oai.openapi+json"}
MAX_RANDOM_BYTES = 100


def compress(body: bytes) -> bytes:
    buffer = io.BytesIO()
    name = secrets.token_hex(secrets.randbelow(MAX_RANDOM_BYTES // 2) + 1)
    with gzip.GzipFile(filename=name, mode="wb", compresslevel=6, fileobj=buffer, mtime=0) as fh:
        fh.write(body)
    return buffer.getvalue()


def should_compress(response: Response) -> bool:
    if response.direct_passthrough or response.is_streamed or response.status_code != 200:
        return False
    if "Content-Encoding" in response.headers or "Content-Range" in response.headers:
        return False
    if request.range is not None or request.method == "HEAD":
        return False
    if "no-transform" in response.headers.get("Cache-Control", ""):
        return False
    if response.mimetype not in TYPES:
        return False
    return (response.content_length or 0) >= MIN_SIZE and accepts_gzip()


def init_app(app: Flask) -> None:
    @app.after_request
    def _compress(response: Response) -> Response:
        # Registered before every other after_request hook, hence run after them all.
        if response.mimetype in TYPES and not response.is_streamed:
            response.vary.add("Accept-Encoding")
        if not should_compress(response):
            return response
        response.set_data(compress(response.get_data()))
        response.headers["Content-Encoding"] = "gzip"
        etag, weak = response.get_etag()
        if etag and not weak:
            # The encoded body is another representation: its validator must differ.
            response.set_etag(etag + "-gz")
        return response
