"""Static assets: fingerprinted URLs, far-future caching, precompressed bodies, the favicon.

At startup every file under saas/static is read once: its SHA-256 gives a fingerprinted name
(`css/app.3f2a9c0d41be.css`), and text files are gzipped once, kept in memory next to the
original (no file is written: web and worker processes keep no local state beyond the package).
Templates link assets with `static_url('css/app.css')`; a fingerprinted URL is served with
`Cache-Control: public, max-age=31536000, immutable`, so a browser downloads each version once.
A URL without fingerprint, or with an old one (a page rendered before a deployment), still gets
the current file, cached briefly.

Brotli is not among the platform's libraries: gzip only.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, current_app, request

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
# Types worth compressing; images other than SVG, fonts in WOFF2, PDFs are compressed already.
COMPRESSIBLE = {"text/css", "text/javascript", "application/javascript", "image/svg+xml",
                "text/plain", "application/json", "image/x-icon", "image/vnd.microsoft.icon"}
_FINGERPRINTED = re.compile(r"^(?P<stem>.+)\.(?P<digest>[0-9a-f]{12})(?P<ext>\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class Asset:
    path: str  # relative to the static folder, e.g. "css/app.css"
    url_name: str  # "css/app.<digest>.css"
    digest: str
    mimetype: str
    body: bytes
    gzipped: bytes | None  # None when compression would not pay


class Assets:
    """The static folder as read at startup."""

    def __init__(self, folder: Path):
        self.by_path: dict[str, Asset] = {}
        self.by_url_name: dict[str, Asset] = {}
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            asset = _load(folder, file)
            self.by_path[asset.path] = asset
            self.by_url_name[asset.url_name] = asset

    def url_name(self, path: str) -> str:
        asset = self.by_path.get(path)
        return asset.url_name if asset else path

    def find(self, name: str) -> tuple[Asset | None, bool]:
        """(asset, fingerprinted) for a requested file name."""
        if name in self.by_url_name and name not in self.by_path:
            return self.by_url_name[name], True
        match = _FINGERPRINTED.match(name)
        if match and name not in self.by_path:
            # An old fingerprint: the current file, but not cached for ever under that name.
            return self.by_path.get(match["stem"] + match["ext"]), False
        return self.by_path.get(name), False


def _load(folder: Path, file: Path) -> Asset:
    body = file.read_bytes()
    path = file.relative_to(folder).as_posix()
    digest = hashlib.sha256(body).hexdigest()[:12]
    stem, dot, ext = path.rpartition(".")
    url_name = f"{stem}.{digest}.{ext}" if dot and "/" not in ext else f"{path}.{digest}"
    mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    gzipped = None
    if mimetype in COMPRESSIBLE:
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        if len(packed) < len(body) * 0.9:
            gzipped = packed
    return Asset(path, url_name, digest, mimetype, body, gzipped)


def accepts_gzip() -> bool:
    # Accept-Encoding: gzip, or gzip;q=0.5, but not gzip;q=0 (werkzeug parses the q-values).
    return request.accept_encodings["gzip"] > 0 or (
        "gzip" not in request.accept_encodings and request.accept_encodings["*"] > 0)


def serve(filename: str) -> Response:
    assets: Assets = current_app.extensions["saas_assets"]
    asset, fingerprinted = assets.find(filename)
    if asset is None:
        abort(404)
    headers = {"Cache-Control": IMMUTABLE if fingerprinted else SHORT,
               "X-Content-Type-Options": "nosniff"}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    body, etag = asset.body, asset.digest
    if asset.gzipped is not None and accepts_gzip():
        # Each encoding is its own representation, with its own validator.
        body, etag = asset.gzipped, asset.digest + "-gz"
        headers["Content-Encoding"] = "gzip"
    if request.if_none_match.contains(etag):
        headers.pop("Content-Encoding", None)
        response = Response(status=304, headers=headers)
        response.set_etag(etag)
        return response
    mimetype = asset.mimetype
    if mimetype.startswith("text/") or mimetype in ("image/svg+xml", "application/json"):
        mimetype += "; charset=utf-8"
    response = Response(body, headers=headers, content_type=mimetype)
    response.set_etag(etag)
    return response


def init_app(app: Flask) -> None:
    assets = Assets(Path(app.static_folder))
    app.extensions["saas_assets"] = assets
    # The platform's static view replaces Flask's (same endpoint, so host guards still know it).
    app.view_functions["static"] = serve
    # Browsers ask every host for /favicon.ico whatever the page links: serve it there too.
    app.add_url_rule("/favicon.ico", endpoint="static", view_func=serve,
                     defaults={"filename": "favicon.ico"})

    def static_url(path: str) -> str:
        return f"{app.static_url_path}/{assets.url_name(path)}"

    app.add_template_global(static_url, "static_url")
