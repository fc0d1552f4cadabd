"""The CLI as a user runs it: exit codes and output of the offline commands, and the packaged sample."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from tcpmesh.cli import main
from tcpmesh.commands.up import default_sample

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_samples_are_the_repository_samples() -> None:
    packaged = default_sample().parent
    for name in ("tcp-echo", "tcp-echo-shift", "two-gateways", "mesh"):
        cmp = filecmp.dircmp(ROOT / "samples" / name, packaged / name)
        assert (cmp.left_only, cmp.right_only) == ([], []), name
        _, mismatch, errors = filecmp.cmpfiles(
            ROOT / "samples" / name, packaged / name, cmp.common_files, shallow=False
        )
        assert (mismatch, errors) == ([], []), name


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "samples/tcp-echo")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "samples/tcp-echo-shift/tcp-echo-20-v2.yaml").read_text().replace("weight: 20", "weight: -1")
    )
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{bad}:26: VirtualService default/tcp-echo: spec.tcp[0].route[1].weight: weight -1 < 0"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("kind: [", "invalid YAML", id="malformed-yaml"),
        pytest.param(
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: nine}]}\n",
            "spec.ports[0].port: expected integer, got string",
            id="wrong-type",
        ),
        pytest.param(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\n"
            "spec: {host: a, subsetz: []}\n",
            "spec.subsetz: unknown field; did you mean 'subsets'?",
            id="unknown-field",
        ),
        pytest.param("- just\n- a list\n", "a resource must be a mapping", id="not-a-mapping"),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert expected in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert all(line.startswith(str(path)) for line in captured.out.strip().splitlines())


def test_oversized_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 500_000)
    assert main(["validate", str(path)]) == 1
    assert "the limit is" in capsys.readouterr().out


def test_dump_json_has_the_four_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", str(ROOT / "samples/tcp-echo"), "-o", "json"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert list(dumped) == ["listeners", "clusters", "endpoints", "extension_configs"]
    assert [c["name"] for c in dumped["extension_configs"]] == ["0.0.0.0_31400~drain", "0.0.0.0_31400~tcp_proxy"]
    assert [listener["name"] for listener in dumped["listeners"]] == ["0.0.0.0_31400"]


def test_dump_inline_weights_has_istiods_three_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", str(ROOT / "samples/tcp-echo"), "-o", "json", "--inline-weights"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert list(dumped) == ["listeners", "clusters", "endpoints"]


def test_dump_refuses_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: Bad_Name}\nspec: {}\n")
    assert main(["dump", str(path)]) == 1
    assert "nothing generated" in capsys.readouterr().err
