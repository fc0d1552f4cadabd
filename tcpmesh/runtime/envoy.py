"""Run a real Envoy as a subprocess: start, wait for its admin API, inspect, stop, restart; validate configs.

Several instances can run at once: each gets ``--use-dynamic-base-id`` (own shared-memory region) and, by
default, an ephemeral admin port that Envoy reports through ``--admin-address-path`` (no free-port race).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from tcpmesh.runtime.admin import AdminError, EnvoyAdmin
from tcpmesh.runtime.binary import EnvoyNotFoundError, find_envoy_binary
from tcpmesh.runtime.bootstrap import render_bootstrap
from tcpmesh.runtime.lifetime import die_with_parent
from tcpmesh.runtime.polling import wait_until

__all__ = [
    "AdminError",
    "EnvoyError",
    "EnvoyNotFoundError",
    "EnvoyProcess",
    "find_envoy_binary",
    "render_bootstrap",
    "validate_config",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Bootstrap = Mapping[str, Any] | str | os.PathLike[str]

_LIVE: weakref.WeakSet[EnvoyProcess] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class EnvoyError(RuntimeError):
    """Envoy failed to start or exited unexpectedly; the message carries the tail of its log."""


class EnvoyProcess:
    """One Envoy subprocess.

    ``bootstrap`` is a dict (written to ``bootstrap.json`` in the work dir) or a path to a YAML/JSON file.
    ``admin_port``: 0 (default) binds an ephemeral port on 127.0.0.1, another number binds that port, None keeps
    whatever the bootstrap says; the override is merged with ``--config-yaml``, so it works for files too.
    stdout and stderr (Envoy logs to stderr) go to ``envoy.log`` in the work dir, appended across restarts.
    A temporary work dir is created when none is given and removed by :meth:`close` / ``with``-exit.
    """

    def __init__(
        self,
        bootstrap: Bootstrap,
        *,
        work_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        admin_port: int | None = 0,
        concurrency: int = 1,
        drain_time_s: int = 1,
        log_level: str = "info",
        component_log_level: str | None = None,
        extra_args: tuple[str, ...] = (),
        admin_timeout: float = 5.0,
    ) -> None:
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="tcpmesh-envoy-") if work_dir is None else work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary) if binary is not None else find_envoy_binary()
        if isinstance(bootstrap, Mapping):
            self.bootstrap_path = self.work_dir / "bootstrap.json"
            self.bootstrap_path.write_text(json.dumps(bootstrap, indent=2))
        else:
            self.bootstrap_path = Path(bootstrap)
        self.admin_port_override = admin_port
        self.concurrency = concurrency
        self.drain_time_s = drain_time_s
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.extra_args = extra_args
        self.admin_timeout = admin_timeout
        self.log_path = self.work_dir / "envoy.log"
        self._address_path = self.work_dir / "admin-address"
        self._base_id_path = self.work_dir / "base-id"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._admin: EnvoyAdmin | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line :meth:`start` runs."""
        cmd = [
            str(self.binary),
            "-c", str(self.bootstrap_path),
            "--admin-address-path", str(self._address_path),
            # A fresh shared-memory base id per process, so parallel Envoys do not collide.
            "--use-dynamic-base-id", "--base-id-path", str(self._base_id_path),
            "--concurrency", str(self.concurrency),
            "--drain-time-s", str(self.drain_time_s),
            "--log-level", self.log_level,
        ]  # fmt: skip
        if self.admin_port_override is not None:
            override = {
                "admin": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port_override}}
                }
            }
            cmd += ["--config-yaml", json.dumps(override)]
        if self.component_log_level:
            cmd += ["--component-log-level", self.component_log_level]
        return [*cmd, *self.extra_args]

    def start(self, timeout: float = 30.0) -> None:
        """Start Envoy and return once its admin API answers (it may still be initialising: see
        :meth:`wait_live`). Raise EnvoyError, with the log tail, if it exits or does not answer in time."""
        if self.running:
            raise EnvoyError(f"Envoy already running (pid {self.pid})")
        self._address_path.unlink(missing_ok=True)
        self._admin = None
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- tcpmesh: starting {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not Envoy's
            preexec_fn=die_with_parent,  # and if we are killed outright, Envoy goes too
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        logger.info("started envoy pid %d (log %s)", self._proc.pid, self.log_path)
        try:
            wait_until(self._admin_answers, timeout=timeout, what="Envoy admin API")
        except BaseException as exc:
            tail = self.log_tail()
            self.stop()
            if isinstance(exc, EnvoyError):
                raise
            raise EnvoyError(f"Envoy did not answer on its admin API within {timeout:g}s\n{tail}") from exc

    def _admin_answers(self) -> bool:
        proc = self._proc
        assert proc is not None
        if proc.poll() is not None:
            raise EnvoyError(f"Envoy exited with code {proc.returncode} during start\n{self.log_tail()}")
        if self._admin is None:
            try:
                text = self._address_path.read_text().strip()
            except FileNotFoundError:
                return False
            host, sep, port = text.rpartition(":")
            if not sep or not port.isdigit():
                return False  # written but not yet complete
            self._admin = EnvoyAdmin(host.strip("[]"), int(port), timeout=self.admin_timeout)
        try:
            self._admin.request("/ready")
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; return the exit code (None if it was not started)."""
        proc = self._proc
        if proc is None:
            return None
        was_running = proc.poll() is None
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("envoy pid %d ignored SIGTERM for %gs; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if was_running:
            logger.info("envoy pid %d exited with %s", proc.pid, proc.returncode)
        return proc.returncode

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (if running) and start a new process with the same bootstrap (a cold restart)."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop and remove the work dir if we created it."""
        self.stop()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> EnvoyProcess:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self._proc is not None:
            logger.error("envoy log tail:\n%s", self.log_tail())
        self.close()

    # -- state -----------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def admin(self) -> EnvoyAdmin:
        """The admin client of the running process."""
        if self._admin is None:
            raise EnvoyError("Envoy is not started")
        return self._admin

    @property
    def admin_port(self) -> int:
        return self.admin.port

    @property
    def base_id(self) -> int | None:
        """The shared-memory base id Envoy picked, once it has written it."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(self._base_id_path.read_text().strip())
        return None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- admin shortcuts -------------------------------------------------------------------------------

    def admin_get(self, path: str) -> str:
        return self.admin.get(path)

    def config_dump(
        self, *, resource: str | None = None, mask: str | None = None, include_eds: bool = False
    ) -> dict[str, Any]:
        return self.admin.config_dump(resource=resource, mask=mask, include_eds=include_eds)

    def stats(self, *, filter: str | None = None) -> dict[str, int]:
        return self.admin.stats(filter=filter)

    def server_state(self) -> str:
        return self.admin.server_state()

    def listeners(self) -> dict[str, tuple[str, int]]:
        return self.admin.listeners()

    def listener_ready(self, name: str) -> bool:
        """True once listener ``name`` is active (warmed and bound), not merely received."""
        return name in self.admin.listeners()

    # -- waiting ---------------------------------------------------------------------------------------

    def wait_for(
        self, probe: Callable[[], T | None], *, timeout: float = 15.0, what: str = "condition", interval: float = 0.05
    ) -> T:
        """Poll ``probe`` until truthy; fail fast with the log tail if Envoy dies meanwhile."""

        def checked() -> T | None:
            if not self.running:
                raise EnvoyError(f"Envoy exited with code {self.returncode}\n{self.log_tail()}")
            return probe()

        return wait_until(checked, timeout=timeout, interval=interval, what=what, ignore=(OSError, AdminError))

    def wait_live(self, timeout: float = 15.0) -> None:
        """Wait until the server is LIVE (initial CDS/LDS from ADS received, or static only)."""
        self.wait_for(lambda: self.server_state() == "LIVE", timeout=timeout, what="Envoy LIVE")

    def wait_for_listener(self, name: str, timeout: float = 15.0) -> tuple[str, int]:
        """Wait until listener ``name`` is active; return its bound (host, port)."""
        return self.wait_for(
            lambda: self.admin.listeners().get(name), timeout=timeout, what=f"listener {name!r} active"
        )

    def wait_for_stat(self, name: str, predicate: Callable[[int], bool] = bool, timeout: float = 15.0) -> int:
        """Wait until stat ``name`` exists and ``predicate(value)`` holds (default: non-zero); return it."""

        def probe() -> tuple[int] | None:
            value = self.admin.stats(filter="^" + _regex_escape(name) + "$").get(name)
            # A 1-tuple keeps a legitimate 0 truthy for wait_until.
            return (value,) if value is not None and predicate(value) else None

        return self.wait_for(probe, timeout=timeout, what=f"stat {name}")[0]


def validate_config(
    config: Bootstrap,
    *,
    binary: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> tuple[bool, str]:
    """Check a bootstrap offline with ``envoy --mode validate``; return (ok, Envoy's output).

    Validation parses and builds everything (clusters, listeners, filters) without binding or connecting.
    """
    envoy = Path(binary) if binary is not None else find_envoy_binary()
    with tempfile.TemporaryDirectory(prefix="tcpmesh-validate-") as tmp:
        if isinstance(config, Mapping):
            path = Path(tmp) / "bootstrap.json"
            path.write_text(json.dumps(config))
        else:
            path = Path(config).resolve()  # the run below uses a scratch cwd
        cmd = [str(envoy), "--mode", "validate", "-c", str(path), "--log-level", "warning", "--disable-hot-restart"]
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False, cwd=tmp
            )
        except subprocess.TimeoutExpired as exc:
            return False, f"envoy --mode validate timed out after {timeout:g}s: {exc}"
    output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace").strip()
    return proc.returncode == 0, output


def _regex_escape(name: str) -> str:
    # Envoy's stats filter is RE2; escaping the metacharacters in stat names ('.', '|') is enough.
    return "".join("\\" + c if c in ".|()[]{}*+?^$\\" else c for c in name)


@atexit.register
def _stop_leftovers() -> None:
    """Envoy does not die with its parent; stop any instance a caller forgot."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for envoy in leftovers:
        with contextlib.suppress(Exception):
            envoy.stop(timeout=5.0)
