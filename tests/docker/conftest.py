"""The docker tier: prints how long each Docker step took (engine, debootstrap, images, compose)."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    dockerenv = sys.modules.get("tests.docker.dockerenv")
    if dockerenv is None or not dockerenv.TIMINGS.steps:
        return
    terminalreporter.write_sep("-", "docker tier timings")
    for line in dockerenv.TIMINGS.lines():
        terminalreporter.write_line(line)
