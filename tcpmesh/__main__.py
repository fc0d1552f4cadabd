"""`python -m tcpmesh` and the `tcpmesh` command."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["serve"] and "thread" not in sys.argv:
        # Before the CLI's imports: the translation worker's forkserver loads the translator on the other core
        # meanwhile (forkserver.py). With `--translate-in thread` there is no worker process to make.
        from tcpmesh.forkserver import worker_context

        worker_context(start=True)
    from tcpmesh.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
