"""A child started with die_with_parent goes away when its supervisor is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tcpmesh.runtime.polling import wait_until

SUPERVISOR = """
import subprocess, sys, time
from tcpmesh.runtime.lifetime import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                         preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose once its state is Z.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_child_dies_when_supervisor_is_killed() -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    try:
        assert supervisor.stdout is not None
        child = int(supervisor.stdout.readline())
        assert _alive(child)
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(10)
        wait_until(lambda: not _alive(child), timeout=10, what="the orphaned child to exit")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
