"""`docker compose up` for real: control plane, Envoy and echo backends in containers, checked from the host.

Needs a Docker engine; dockerenv.py installs and starts one when it is missing (root + apt), builds a base image
without a registry (debootstrap) and the project image (compose/Dockerfile). Skips only when dockerd cannot run
on the machine at all. Run alone with ``pytest -m docker tests/docker`` (or scripts/docker-tier.sh).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import binomtest

from tests.docker import dockerenv

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

CONFIG_DIR = dockerenv.REPO / "compose" / "config"
NODE_ID = "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
HOST = "tcp-echo.default.svc.cluster.local"
V1 = f"outbound|9000|v1|{HOST}"
V2 = f"outbound|9000|v2|{HOST}"
CONNECTIONS = 400
P_THRESHOLD = 1e-3
SERVICES = ("control-plane", "envoy", "echo-v1", "echo-v2")


# ------------------------------------------------------------------------------------------ helpers


def exchange(port: int, payload: bytes = b"hello\n", timeout: float = 5.0) -> bytes:
    """One `nc`: connect to 127.0.0.1:port, send a line, return the line that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def prefix_counts(port: int, n: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(n):
        reply = exchange(port)
        counts[reply.split(b" ", 1)[0].decode() if reply.endswith(b" hello\n") else f"bad:{reply!r}"] += 1
    return counts


def wait_for(what: str, check: Callable[[], bool], deadline_s: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + deadline_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
            last = None
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {deadline_s:.0f} s" + (f" (last error: {last!r})" if last else ""))


def admin_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return json.loads(resp.read())


ECDS_SUFFIX = "~tcp_proxy"


def tcp_proxies(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Listener name -> its tcp_proxy, from the ECDS filter configs (``<listener>~tcp_proxy``) it is served by."""
    return {c["name"].removesuffix(ECDS_SUFFIX): c["typed_config"] for c in configs if c["name"].endswith(ECDS_SUFFIX)}


def envoy_tcp_proxies(admin_port: int) -> dict[str, dict[str, Any]]:
    """What Envoy runs: its ECDS filter configs, from its own /config_dump."""
    dump = admin_json(admin_port, "/config_dump?resource=ecds_filters")
    return tcp_proxies([e["ecds_filter"] for e in dump.get("configs", []) if "ecds_filter" in e])


def served_tcp_proxies(server: str) -> dict[str, dict[str, Any]]:
    """What the control plane serves the gateway: `tcpmesh dump --server` (JSON)."""
    out = cli("dump", "--server", server, "--proxy", NODE_ID, "--type", "extension_configs", "-o", "json").stdout
    return tcp_proxies(json.loads(out)["extension_configs"])


def weights(tcp_proxy: dict[str, Any]) -> dict[str, int]:
    if "cluster" in tcp_proxy:
        return {tcp_proxy["cluster"]: 100}
    return {c["name"]: int(c.get("weight", 0)) for c in tcp_proxy.get("weighted_clusters", {}).get("clusters", [])}


def tcpmesh_cli() -> list[str]:
    local = Path(sys.executable).parent / "tcpmesh"
    found = str(local) if local.exists() else shutil.which("tcpmesh")
    assert found, "the tcpmesh console script is not installed on the host (pip install -e .)"
    return [found]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*tcpmesh_cli(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert res.returncode == 0, f"tcpmesh {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def assert_split(counts: Counter[str], n: int, p_one: float) -> None:
    assert set(counts) <= {"one", "two"}, f"unexpected replies: {counts}"
    assert counts["one"] > 0, f"v1 never answered: {counts}"
    assert counts["two"] > 0, f"v2 never answered: {counts}"
    test = binomtest(counts["one"], n, p_one)
    assert test.pvalue > P_THRESHOLD, f"{counts} is not a {p_one:.0%}/{1 - p_one:.0%} split (p={test.pvalue:.2e})"


def shifted_virtualservice(dest: Path, v1_weight: int, v2_weight: int) -> Path:
    """compose/config's VirtualService with the 31400 weights changed."""
    docs = list(yaml.safe_load_all((CONFIG_DIR / "tcp-echo-virtualservice.yaml").read_text()))
    (vs,) = [d for d in docs if d and d.get("kind") == "VirtualService"]
    route = vs["spec"]["tcp"][0]["route"]
    route[0]["weight"], route[1]["weight"] = v1_weight, v2_weight
    dest.write_text(yaml.safe_dump(vs, sort_keys=False))
    return dest


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def project_image() -> str:
    try:
        dockerenv.ensure_engine()
    except dockerenv.EngineUnavailable as exc:
        pytest.skip(f"Docker cannot run on this machine: {exc}")
    base = dockerenv.ensure_base_image()
    return dockerenv.build_project_image(base)


@pytest.fixture
def stack(project_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dockerenv.ComposeProject]:
    # The control plane writes its API token there; the host CLI finds it through the same variable.
    monkeypatch.setenv("TCPMESH_STATE_DIR", str(tmp_path / "state"))
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)  # the control plane may write to it; never to the repository's copy
    project = dockerenv.ComposeProject.create(image=project_image, config_dir=config)
    try:
        with dockerenv.TIMINGS.step("compose up (to healthy)") as notes:
            try:
                project.up()
                project.wait_healthy(SERVICES, deadline_s=180)
            except BaseException:
                print(f"--- docker-compose logs ({project.name}) ---\n{project.logs()}")
                raise
            notes.append(project.name)
        yield project
    finally:
        project.down()  # the cleanup after a failure; a no-op after the test took the stack down itself


# ------------------------------------------------------------------------------------------ the test


def test_compose_stack_serves_weighted_tcp(stack: dockerenv.ComposeProject, tmp_path: Path) -> None:
    try:
        check_stack(stack, tmp_path)
    except BaseException:
        print(f"--- docker-compose logs ({stack.name}) ---\n{stack.logs()}")
        raise


def check_stack(stack: dockerenv.ComposeProject, tmp_path: Path) -> None:
    gateway = stack.port("TCPMESH_GATEWAY_PORT")
    gateway2 = stack.port("TCPMESH_GATEWAY2_PORT")
    admin = stack.port("TCPMESH_ENVOY_ADMIN_PORT")
    server = f"127.0.0.1:{stack.port('TCPMESH_HTTP_PORT')}"  # `--server ADDR`: host:port of the HTTP API

    # The gateway answers through Envoy once listeners and the DNS-resolved echo endpoints are in.
    wait_for("gateway answers", lambda: exchange(gateway) in (b"one hello\n", b"two hello\n"), 90)

    # 80/20 on 31400 (binomial test), and 31401 is v2 only.
    with dockerenv.TIMINGS.step(f"{CONNECTIONS} connections 80/20"):
        assert_split(prefix_counts(gateway, CONNECTIONS), CONNECTIONS, 0.8)
    assert prefix_counts(gateway2, 20) == Counter({"two": 20})

    # What Envoy took over ADS, and what the control plane says it generated.
    assert weights(envoy_tcp_proxies(admin)["0.0.0.0_31400"]) == {V1: 80, V2: 20}
    assert weights(served_tcp_proxies(server)["0.0.0.0_31400"]) == {V1: 80, V2: 20}
    assert "weighted_clusters" in served_tcp_proxies(server)["0.0.0.0_31400"]
    status = cli("status", "--server", server).stdout
    assert "istio-ingressgateway" in status, status

    # Shift the weights from the host over the control plane's HTTP API; Envoy picks it up.
    with dockerenv.TIMINGS.step("weight shift to applied"):
        cli("apply", "-f", str(shifted_virtualservice(tmp_path / "vs-10-90.yaml", 10, 90)), "--server", server)
        wait_for(
            "Envoy serves the 10/90 weights",
            lambda: weights(envoy_tcp_proxies(admin).get("0.0.0.0_31400", {})) == {V1: 10, V2: 90},
            30,
        )
    assert weights(served_tcp_proxies(server)["0.0.0.0_31400"]) == {V1: 10, V2: 90}
    # The shift was an ECDS update only: Envoy modified no listener (so drained no connection).
    stats = admin_json(admin, "/stats?format=json&filter=listener_manager.listener_modified")
    assert [s["value"] for s in stats["stats"]] == [0], stats
    assert_split(prefix_counts(gateway, CONNECTIONS), CONNECTIONS, 0.1)

    # `down` leaves no container and no network of the project behind.
    with dockerenv.TIMINGS.step("compose down"):
        stack.down()
    assert stack.containers() == []
    assert stack.networks() == []
