"""`python -m tcpmesh` is the `tcpmesh` command."""

from __future__ import annotations

import sys

from tcpmesh.cli import main

sys.exit(main())
