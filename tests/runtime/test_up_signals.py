"""`tcpmesh up` stops on SIGTERM (kill) and SIGINT (Ctrl-C): exit 0, and none of the processes it started (control
plane and its worker, Envoy, echo pods) is left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

pytestmark = pytest.mark.envoy

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "tcp-echo"
SAMPLE_PORTS = (31400, 9000, 9001, 9002)
"""The gateway's and the echo pods' ports in the sample: moved to free ones so nothing else on the machine is hit."""


def _sample_on_free_ports(into: Path, ports: list[int]) -> list[Path]:
    moved = dict(zip(SAMPLE_PORTS, ports, strict=True))
    pattern = re.compile(r"\b(" + "|".join(map(str, SAMPLE_PORTS)) + r")\b")
    into.mkdir()
    out = []
    for file in sorted(SAMPLE.glob("*.yaml")):
        target = into / file.name
        target.write_text(pattern.sub(lambda m: str(moved[int(m.group(1))]), file.read_text()))
        out.append(target)
    return out


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, …; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _descendants(root: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(int(stat[1]), set()).add(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), set()) - found:
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return "?"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_stops_every_child_and_exits_0_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    ads, http, admin, *sample_ports = free_ports(3 + len(SAMPLE_PORTS))
    paths = _sample_on_free_ports(tmp_path / "sample", sample_ports)
    cmd = [
        sys.executable, "-m", "tcpmesh", "up", "--state-dir", str(tmp_path / "state"),
        "--ads-port", str(ads), "--http-port", str(http), "--admin-port", str(admin), *map(str, paths),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_until(
            lambda: proc.poll() is not None or "tcpmesh is up" in out.read_text(),
            timeout=120,
            what="tcpmesh up to say it is up",
        )
        assert proc.poll() is None, err.read_text()
        children = _descendants(proc.pid)
        commands = {pid: _cmdline(pid) for pid in children}
        assert any(" serve " in c for c in commands.values()), commands  # the control plane
        assert any("envoy" in c.split(" ", 1)[0] for c in commands.values()), commands
        assert sum(" -m tcpmesh.echo " in c for c in commands.values()) >= 2, commands  # v1 and v2 pods

        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, err.read_text()
        assert "tcpmesh up: stopped" in err.read_text()
        # At once, not eventually: `up` waits for its children, so none may outlive it (their parent-death signal
        # would stop them later anyway, which is not what this checks).
        left = {pid: commands[pid] for pid in children if _running(pid)}
        assert not left, left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
