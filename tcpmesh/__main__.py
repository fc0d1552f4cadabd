"""`python -m tcpmesh` and the `tcpmesh` command."""

from __future__ import annotations

import itertools
import sys


def main() -> int:
    args = sys.argv[1:]
    in_thread = "--translate-in=thread" in args or ("--translate-in", "thread") in itertools.pairwise(args)
    if args[:1] == ["serve"] and not in_thread:
        # Before the CLI's imports: the translation worker's forkserver loads the translator on the other core
        # meanwhile (forkserver.py). With `--translate-in thread` there is no worker process to make.
        from tcpmesh.forkserver import worker_context

        worker_context(start=True)
    from tcpmesh.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
