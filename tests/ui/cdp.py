"""Just enough of the Chrome DevTools Protocol to drive Debian's headless Chromium from a test (aiohttp's
websocket client; no browser download, no driver)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


class Browser:
    """One headless Chromium with one page at ``url``; ``evaluate`` runs JavaScript in it."""

    def __init__(self, url: str) -> None:
        assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
        self.profile = tempfile.TemporaryDirectory(prefix="tcpmesh-chromium-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile.name}", f"--remote-debugging-port={self.port}", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes too, so close() can end them all
        )
        self.ws_url = wait_until(self._page_ws, timeout=30, what="Chromium's page target", ignore=(OSError,))
        self._ids = itertools.count(1)

    def _page_ws(self) -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2) as r:
            targets = json.load(r)
        return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.ws_url, max_msg_size=0) as ws:
            call_id = next(self._ids)
            await ws.send_json({"id": call_id, "method": method, "params": params})
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == call_id:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    return dict(data["result"])
        raise RuntimeError(f"{method}: no answer")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return asyncio.run(asyncio.wait_for(self._call(method, **params), timeout=20))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, needle: str, timeout: float = 10.0) -> float:
        """Seconds until the page's text contains ``needle``."""
        start = time.monotonic()
        wait_until(lambda: needle in self.text(), timeout=timeout, interval=0.05, what=f"{needle!r} on the page")
        return time.monotonic() - start

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        # Chromium's helpers (zygote, renderers) outlive the browser process for a moment and keep writing to
        # the profile: end the whole session before removing it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        wait_until(lambda: not _session_alive(self.proc.pid), timeout=10, what="Chromium's helpers to exit")
        self.profile.cleanup()


def _session_alive(sid: int) -> bool:
    """Whether any process of session ``sid`` is still running (zombies excluded)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            return True
    return False
