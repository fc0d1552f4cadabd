"""Children that do not outlive their supervisor.

`tcpmesh up`, the tests and the benchmarks start control planes, Envoys and echo pods in sessions of their own
(so Ctrl-C in a terminal reaches only the supervisor, which stops them in order). If the supervisor itself is
killed (SIGKILL, a timed-out benchmark), nothing would stop them; Linux's parent-death signal does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for subprocess.Popen: SIGTERM this child when the thread that started it goes away."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the supervisor's own stop() is all there is
