"""`tcpmesh drain` refuses what it cannot do, clearly and before it writes anything (a real control plane)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpmesh.cli import main
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts

ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, *extra: str) -> ControlPlaneProcess:
    cp = ControlPlaneProcess(None, tmp_path, MeshPorts.free(), ["--seed", str(ROOT / "samples/tcp-echo"), *extra])
    cp.start()
    return cp


def drain(cp: ControlPlaneProcess, *args: str) -> int:
    return main(["drain", *args, "--over", "1s", "--server", cp.http, "--token-file", str(cp.token_file)])


def vs_json(cp: ControlPlaneProcess, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["get", "vs", "tcp-echo", "-o", "json", "--server", cp.http, "--token-file", str(cp.token_file)]) == 0
    loaded: dict[str, object] = json.loads(capsys.readouterr().out)
    return loaded


def test_refusals_name_the_reason_and_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cp = serve(tmp_path)
    try:
        before = vs_json(cp, capsys)
        assert drain(cp, "vs/nope", "--subset", "v1") == 1
        assert "VirtualService default/nope not found" in capsys.readouterr().err
        assert drain(cp, "vs/tcp-echo", "--subset", "v2") == 1  # the sample routes everything to v1
        assert "no tcp or tls route of default/tcp-echo has subset 'v2'" in capsys.readouterr().err
        assert vs_json(cp, capsys) == before
        assert drain(cp, "vs/tcp-echo", "--subset", "v1") == 0
        annotations = vs_json(cp, capsys)["metadata"]["annotations"]  # type: ignore[index]
        assert json.loads(annotations["drain.tcpmesh.io/v1"])["fraction"] == 1.0
    finally:
        cp.stop()


def test_inline_weights_mode_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cp = serve(tmp_path, "--inline-weights")
    try:
        assert drain(cp, "vs/tcp-echo", "--subset", "v1") == 1
        assert "serves istiod's inline form (--inline-weights), which has no drain filter" in capsys.readouterr().err
    finally:
        cp.stop()


def test_a_gateway_api_route_is_drained_by_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tcproute/NAME --backend SVC: refused for an unknown route or backend and for --subset; written on the
    TCPRoute (which the store validates) when the backend is one of its backendRefs."""
    cp = ControlPlaneProcess(None, tmp_path, MeshPorts.free(), ["--seed", str(ROOT / "samples/gateway-api-tcp-echo")])
    cp.start()
    server = ["--server", cp.http, "--token-file", str(cp.token_file)]
    try:
        assert drain(cp, "tcproute/nope", "--backend", "tcp-echo-v1") == 1
        assert "TCPRoute default/nope not found" in capsys.readouterr().err
        assert drain(cp, "tcproute/tcp-echo", "--backend", "tcp-echo-v2") == 1
        assert "no backendRef of TCPRoute default/tcp-echo is named 'tcp-echo-v2'" in capsys.readouterr().err
        assert drain(cp, "tcproute/tcp-echo", "--subset", "v1") == 1
        assert "a TCPRoute is drained with --backend (a route has no subsets)" in capsys.readouterr().err
        assert drain(cp, "vs/tcp-echo-x", "--backend", "tcp-echo-v1") == 1
        assert "a VirtualService is drained with --subset" in capsys.readouterr().err
        assert drain(cp, "route/tcp-echo", "--backend", "tcp-echo-v1") == 1
        assert "expected vs/NAME, tcproute/NAME or tlsroute/NAME, got 'route/tcp-echo'" in capsys.readouterr().err
        assert drain(cp, "tcproute/tcp-echo", "--backend", "tcp-echo-v1") == 0
        assert "draining backend tcp-echo-v1 of tcp-echo" in capsys.readouterr().out
        assert main(["get", "tcproute", "tcp-echo", "-o", "json", *server]) == 0
        annotations = json.loads(capsys.readouterr().out)["metadata"]["annotations"]
        assert json.loads(annotations["drain.tcpmesh.io/tcp-echo-v1"])["fraction"] == 1.0
    finally:
        cp.stop()
