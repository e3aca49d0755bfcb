import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import FAST_HASHER

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP *.mutualis.test 127.0.0.1, MAP mutualis.test 127.0.0.1",
]


def require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("SAAS_SKIP_BROWSER") == "1":
        pytest.skip("SAAS_SKIP_BROWSER=1: browser tests skipped on request")
    pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (apt-get install -y chromium) "
                "or set SAAS_SKIP_BROWSER=1 to skip the browser tests explicitly.")


@pytest.fixture
def live_port(app):
    """Serve the PostgreSQL test app on 127.0.0.1:<free port> from a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _fast_password_hashing(app, monkeypatch):
    # create_app() drops SAAS_* override keys, so the conftest's fast hasher never reaches the app.
    monkeypatch.setitem(app.config, "SAAS_PASSWORD_HASHER", FAST_HASHER)
