"""Hostile config input (issue 10): numbers outside their proto ranges, bytes that are not UTF-8, 100 000 unknown
keys, thousands of problems. Each is a located validation error, never a traceback or a 500, and answers stay small."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcpmesh.model.config import load_config
from tests.security.conftest import Server

OVERFLOW = "123456789012345678901234567890"

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        subset: v1
      weight: {w1}
    - destination:
        host: tcp-echo
        subset: v2
      weight: 20
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    _, problems = load_config([path])
    return [str(p) for p in problems if p.is_error]


def test_weight_above_int32_is_a_located_error(tmp_path: Path) -> None:
    errors = _problems(tmp_path, VS.format(w1=OVERFLOW))
    assert errors == [
        f"{tmp_path / 'in.yaml'}:15: VirtualService default/tcp-echo: spec.tcp[0].route[0].weight: "
        f"invalid value for int32 field weight: {OVERFLOW}"
    ]
    assert _problems(tmp_path, VS.format(w1=2**31 - 1)) == []
    assert len(_problems(tmp_path, VS.format(w1=2**31))) == 1


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("port", 2**32, "invalid value for uint32 field port: 4294967296"),
        ("port", -1, "invalid value for uint32 field port: -1"),
        ("port", 70000, "port number 70000 must be in the range 1..65535"),
    ],
)
def test_match_port_out_of_range(tmp_path: Path, field: str, value: int, expected: str) -> None:
    text = VS.format(w1=80).replace("- port: 31400", f"- {field}: {value}")
    errors = _problems(tmp_path, text)
    assert len(errors) == 1
    assert errors[0].endswith(expected)
    assert ":10: " in errors[0]


def test_workload_entry_weight_and_ports_are_uint32(tmp_path: Path) -> None:
    text = """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we}
spec:
  address: 10.0.0.1
  weight: 4294967296
  ports: {tcp: 99999999999}
"""
    errors = _problems(tmp_path, text)
    assert any(e.endswith("spec.weight: invalid value for uint32 field weight: 4294967296") for e in errors), errors
    assert any("spec.ports.tcp: invalid value for uint32 field tcp: 99999999999" in e for e in errors), errors


@pytest.mark.parametrize("duration", ["9999999999999h", "9" * 400 + "s", "106751d"])
def test_durations_beyond_go_duration_are_invalid(tmp_path: Path, duration: str) -> None:
    text = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: dr}}
spec:
  host: tcp-echo
  trafficPolicy:
    connectionPool:
      tcp: {{connectTimeout: "{duration}"}}
"""
    errors = _problems(tmp_path, text)
    assert len(errors) == 1
    assert f"invalid duration {duration!r}" in errors[0]


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("TCPMESH_TOKEN", "TCPMESH_SERVER")}
    return subprocess.run(
        [sys.executable, "-m", "tcpmesh", *args], input=stdin, capture_output=True, timeout=60, env=env
    )


def test_non_utf8_file_is_a_clear_error_in_cli(tmp_path: Path, server: Server) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(VS.format(w1=80).replace("tcp-echo\n", "caf\xe9\n", 1).encode("latin-1"))
    for args in (
        ("validate", str(bad)),
        ("apply", "-f", str(bad), "--state-dir", str(tmp_path / "store")),
        ("apply", "-f", str(bad), "--server", server.host, "--token-file", str(server.cp.token_file)),
        ("apply", "-f", str(tmp_path), "--server", server.host, "--token-file", str(server.cp.token_file)),
    ):
        res = _cli(*args)
        out = (res.stdout + res.stderr).decode()
        assert res.returncode == 1, (args, out)
        assert f"{bad}:4: not UTF-8 text (byte 0xe9 at offset " in out, (args, out)
        assert "Traceback" not in out
    res = _cli("apply", "-f", "-", "--state-dir", str(tmp_path / "store"), stdin=b"kind: \xff\n")
    assert res.returncode == 1
    assert b"<stdin>:1: not UTF-8 text (byte 0xff at offset 6)" in res.stderr


def test_non_utf8_http_body_is_400(server: Server) -> None:
    before = server.resources()
    reply = server.request(
        "POST", "/api/apply?source=evil.yaml", server.auth(**{"Content-Type": "application/yaml"}), b"kind: \xff\xfe\n"
    )
    assert reply.status == 400, reply
    (problem,) = reply.json()["problems"]
    assert problem["text"] == "evil.yaml:1: not UTF-8 text (byte 0xff at offset 6)"
    assert server.resources() == before


def test_weight_overflow_through_the_api_is_422_and_serving_goes_on(server: Server) -> None:
    generation = server.generation()
    reply = server.request(
        "POST",
        "/api/apply?source=vs.yaml",
        server.auth(**{"Content-Type": "application/yaml"}),
        VS.format(w1=OVERFLOW).encode(),
    )
    assert reply.status == 422, reply
    assert any(f"invalid value for int32 field weight: {OVERFLOW}" in p["text"] for p in reply.json()["problems"])
    assert server.generation() == generation
    assert server.request("GET", "/readyz", {"Host": server.host}).status == 200


def _unknown_keys(n: int) -> bytes:
    head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: junk}\nspec:\n  hosts: [a.b]\n"
    return (head + "".join(f"  junk{i}: {i}\n" for i in range(n))).encode()


def test_100k_unknown_keys_get_a_small_answer(server: Server, tmp_path: Path) -> None:
    # How fast is a benchmark's question (the issue measured 7.5 s; the fix ~1.6 s): no timed assertion here.
    body = _unknown_keys(100_000)
    reply = server.request(
        "POST", "/api/apply?source=junk.yaml", server.auth(**{"Content-Type": "application/yaml"}), body
    )
    assert reply.status == 422
    assert len(reply.body) < 10_000, len(reply.body)
    assert "a mapping of 100001 keys (at most 10000)" in reply.json()["problems"][0]["text"]
    assert server.request("GET", "/healthz", {"Host": server.host}).status == 200
    # Below the mapping cap: 5 000 unknown keys are reported as the first 20 plus a count.
    path = tmp_path / "junk.yaml"
    path.write_bytes(_unknown_keys(5_000))
    res = _cli("validate", str(path))
    lines = res.stdout.decode().splitlines()
    assert res.returncode == 1
    unknown = [line for line in lines if "unknown field" in line]
    assert len(unknown) == 21
    assert unknown[-1].endswith("spec.junk20: and 4980 more unknown fields here")


def test_many_problems_are_capped_with_a_count(server: Server, tmp_path: Path) -> None:
    docs = "".join(
        f"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs{i}}}\n"
        f"spec: {{hosts: [a.b], tcp: [{{route: [{{destination: {{host: a.b}}, weight: -1}}]}}]}}\n"
        for i in range(300)
    )
    reply = server.request(
        "POST", "/api/apply?source=many.yaml", server.auth(**{"Content-Type": "application/yaml"}), docs.encode()
    )
    assert reply.status == 422
    payload = reply.json()
    assert len(payload["problems"]) == 100
    assert payload["more_problems"] == 200
    path = tmp_path / "many.yaml"
    path.write_text(docs)
    res = _cli("apply", "-f", str(path), "--server", server.host, "--token-file", str(server.cp.token_file))
    err = res.stderr.decode().splitlines()
    assert res.returncode == 1
    assert err[-1] == "... and 200 more problems"
    assert len(err) == 101
