"""The command line imports what the command it runs needs: `serve` starts its translation worker before the
HTTP stack is imported, and every command is still there for the help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tcpmesh.cli import COMMANDS, build_parser


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return set(out.split())


def test_serve_imports_no_http_stack_before_it_starts() -> None:
    # What `tcpmesh serve` imports before cp.restore starts the worker: the serve command's parser and module.
    loaded = _modules_after("from tcpmesh.cli import build_parser\nbuild_parser('serve')")
    assert "tcpmesh.commands.serve" in loaded
    assert not {m for m in loaded if m == "aiohttp" or m.startswith("aiohttp.")}
    assert "tcpmesh.httpapi" not in loaded
    assert "tcpmesh.commands.client" not in loaded


def test_the_whole_parser_has_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command.name}" in shown


def test_one_command_parses_as_in_the_whole_parser() -> None:
    argv = ["serve", "--state-dir", "/tmp/x", "--debounce-ms", "5"]
    alone, whole = build_parser("serve").parse_args(argv), build_parser().parse_args(argv)
    assert vars(alone) == vars(whole)
    assert alone.debounce_ms == 5


def test_an_unknown_command_lists_them_all(capsys: pytest.CaptureFixture[str]) -> None:
    from tcpmesh.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["serv"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'serv'" in err
    assert all(repr(c.name) in err for c in COMMANDS)
