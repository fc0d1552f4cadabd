"""xDS reliability through a real Envoy under load: make-before-break config changes, control-plane kill -9,
Envoy restart, a config Envoy rejects, and ADS over mutual TLS. SotW and delta (the ads_api_type fixture)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.bootstrap import AdsTls, gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until
from tests import faults

from .conftest import SAMPLES, Mesh, make_mesh
from .traffic import LoadLoop, assert_split, exchange, replies

pytestmark = pytest.mark.envoy

TCP_ECHO = SAMPLES / "tcp-echo"
CHANGES = 20

_CHANGE = """apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
  subsets:
{subsets}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: {subset}
"""


class Load(LoadLoop):
    """LoadLoop that also remembers the latest reply and its rate."""

    last = ""
    per_second = 400.0  # "a few hundred connections per second", paced so a run lasts about 30 s

    def _run(self) -> None:
        self.started = time.monotonic()
        deadline = self.started + self.max_seconds
        for n in range(self.max_connections):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            ahead = self.started + n / self.per_second - time.monotonic()
            if ahead > 0:
                self._stop.wait(ahead)  # pacing, not synchronisation
            try:
                reply = exchange(self.port, timeout=5)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if reply:
                self.ok[reply] += 1
                self.last = reply
            else:
                self.failures.append("connection closed without a reply")
        self.ended = time.monotonic()

    def rate(self) -> float:
        end = getattr(self, "ended", time.monotonic())
        return self.total / max(end - self.started, 1e-3)


def change_text(i: int) -> tuple[str, str]:
    """Even: DR {v1, v3}, route v1. Odd: DR {v2}, route v2. Each switch adds the cluster the route moves to
    and removes the one it leaves, so a listener naming a missing cluster would fail connections."""
    subsets = ["v1", "v3"] if i % 2 == 0 else ["v2"]
    body = "\n".join(f"  - name: {s}\n    labels:\n      version: {s}" for s in subsets)
    return _CHANGE.format(subsets=body, subset=subsets[0]), subsets[0]


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics(mesh: Mesh) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://{mesh.control_plane.http}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


@pytest.fixture
def faulty_mesh(tmp_path: Path, ads_api_type: str) -> Iterator[Mesh]:
    """A mesh whose control plane runs tests/faults.py: its translator breaks while a marker file exists.
    Inline weights: the faults rewrite the listeners' tcp_proxy, so a NACK is an LDS one (ECDS NACKs alike)."""
    m = make_mesh(tmp_path, ads_api_type, ("--inline-weights",), program=(sys.executable, faults.__file__))
    try:
        yield m
    finally:
        m.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_changes_and_restarts_under_load_fail_no_connection(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([TCP_ECHO], tmp_path / "input"))
    port = mesh.port(31400)
    envoy = mesh.envoys[0]
    convergence: list[float] = []
    with Load(port, max_connections=200_000, max_seconds=150) as load:
        load.wait_for(100)
        for i in range(CHANGES):
            text, subset = change_text(i)
            path = tmp_path / f"change-{i}.yaml"
            path.write_text(text)
            started = time.monotonic()
            result = mesh.apply(path)
            assert result["code"] == 200, result
            mesh.wait_synced(generation=i + 2)
            convergence.append(time.monotonic() - started)
            reply = "one hello" if subset == "v1" else "two hello"
            wait_until(lambda r=reply: load.last == r, timeout=10, what=f"traffic to move to {subset}")  # type: ignore[misc]
            load.wait_for(450)  # about 1.1 s of load per configuration
        assert load.failures == [], load.failures[:5]
        changes_done = load.total

        # kill -9 the control plane: forwarding goes on, and the restarted one re-serves the same versions.
        pushes_before_kill = metric(metrics(mesh), "tcpmesh_xds_pushes_total")
        stats = envoy.stats()
        lds, draining = stats["listener_manager.lds.update_success"], stats["listener_manager.total_listeners_draining"]
        assert mesh.control_plane.process is not None
        os.kill(mesh.control_plane.process.pid, signal.SIGKILL)
        mesh.control_plane.process.wait(10)
        load.wait_for(200)
        mesh.control_plane.start()
        mesh.wait_synced()
        load.wait_for(200)
        stats = envoy.stats()
        assert stats["listener_manager.lds.update_success"] == lds
        assert stats["listener_manager.total_listeners_draining"] == draining
    assert load.failures == [], load.failures[:5]
    print(
        f"\n{mesh.ads_api_type}: {CHANGES} changes, {changes_done} connections during them, {load.total} in all, "
        f"{load.rate():.0f}/s, 0 failed; apply->ACK max {max(convergence) * 1000:.0f} ms, "
        f"median {sorted(convergence)[len(convergence) // 2] * 1000:.0f} ms; {pushes_before_kill:.0f} pushes for the "
        f"changes, {metric(metrics(mesh), 'tcpmesh_xds_pushes_total'):.0f} after the restart"
    )

    # An Envoy restart gets its full config back promptly.
    envoy.stop()
    started = time.monotonic()
    envoy.start()
    mesh.wait_synced()
    envoy.wait_for_listener(f"0.0.0.0_{port}")
    assert time.monotonic() - started < 20  # a loaded CI machine: Envoy's own start is seconds of it
    assert_split(replies(port, 50), {"one hello" if (CHANGES - 1) % 2 == 0 else "two hello": 1.0})


def test_rejected_config_is_reported_and_last_good_keeps_serving(faulty_mesh: Mesh, tmp_path: Path) -> None:
    mesh = faulty_mesh
    mesh.start(mesh.copy_samples([TCP_ECHO], tmp_path / "input"))
    port = mesh.port(31400)
    before = metric(metrics(mesh), 'tcpmesh_xds_pushes_total{type="lds"}')
    with Load(port) as load:
        load.wait_for(50)
        (mesh.state_dir / faults.BREAK_WEIGHTS).touch()
        text, _ = change_text(1)  # a real change (to v2), which the fault breaks: Envoy must NACK it
        path = tmp_path / "change.yaml"
        path.write_text(text)
        assert mesh.apply(path)["code"] == 200

        def nacked() -> dict[str, object] | None:
            for proxy in mesh.control_plane.status()["proxies"]:
                lds = proxy["types"]["Listener"]
                if lds["state"] == "ERROR" and lds["last_nack"]:
                    return dict(lds)
            return None

        lds = wait_until(nacked, timeout=15, what="the listener NACK to show in status")
        load.wait_for(200)
        # No loop: over a further second, no new LDS push (the same rejected content is never re-sent).
        pushes = metric(metrics(mesh), 'tcpmesh_xds_pushes_total{type="lds"}')
        load.wait_for(100)
        assert metric(metrics(mesh), 'tcpmesh_xds_pushes_total{type="lds"}') == pushes
    assert pushes - before <= 2
    assert load.failures == []
    assert set(load.ok) == {"one hello"}  # the last good config (all v1) keeps serving
    text_metrics = metrics(mesh)
    assert metric(text_metrics, 'tcpmesh_xds_nacks_total{type="lds"}') >= 1
    assert metric(text_metrics, 'tcpmesh_xds_rejecting_proxies{type="lds"}') == 1
    assert "weight" in str(lds["last_nack"]).lower() or "value must be" in str(lds["last_nack"]).lower()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpmesh",
            "status",
            "--server",
            mesh.control_plane.http,
            "--token-file",
            str(mesh.control_plane.token_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "NACK Listener" in out


def test_translation_failure_is_a_rejected_change_and_no_stream_closes(faulty_mesh: Mesh, tmp_path: Path) -> None:
    mesh = faulty_mesh
    mesh.start(mesh.copy_samples([TCP_ECHO], tmp_path / "input"))
    port = mesh.port(31400)
    connected = {p["id"]: p["connected_since"] for p in mesh.control_plane.status()["proxies"]}
    generation = mesh.control_plane.status()["generation"]
    with Load(port) as load:
        load.wait_for(50)
        (mesh.state_dir / faults.FAIL_TRANSLATE).touch()
        text, _ = change_text(1)
        path = tmp_path / "change.yaml"
        path.write_text(text)
        result = mesh.apply(path)
        assert result["code"] == 422, result  # rejected like a validation error, with the reason
        assert "injected translator fault" in str(result["problems"])
        load.wait_for(200)
    status = mesh.control_plane.status()
    assert status["generation"] == generation
    assert status["rejected"] is not None
    assert "injected translator fault" in status["rejected"]["problems"][0]["message"]
    # No stream was closed for it, and the last good config (all v1) kept serving.
    assert {p["id"]: p["connected_since"] for p in status["proxies"]} == connected
    assert load.failures == []
    assert set(load.ok) == {"one hello"}
    assert metric(metrics(mesh), "tcpmesh_config_rejected ") == 1
    # Once the fault is gone the same change is accepted and served.
    (mesh.state_dir / faults.FAIL_TRANSLATE).unlink()
    assert mesh.apply(path)["code"] == 200
    mesh.wait_synced(generation=generation + 1)
    assert metric(metrics(mesh), "tcpmesh_config_rejected ") == 0
    wait_until(lambda: set(replies(port, 5)) == {"two hello"}, timeout=10, what="traffic to move to v2")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=tcpmesh-test-ca", cwd=d)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        # The proxy identity the gateway may claim (tcpmesh/xds/identity.py): namespace istio-system.
        ("client", "extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/istio-system/sa/gw"),
    ):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make certificates")
def test_ads_over_mutual_tls(tmp_path: Path, ads_api_type: str) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    tls_args = ("--ads-tls-cert", str(pki / "server.pem"), "--ads-tls-key", str(pki / "server.key"),
                "--ads-tls-client-ca", str(pki / "ca.pem"))  # fmt: skip
    mesh = make_mesh(tmp_path, ads_api_type, tls_args)
    try:
        mesh.start(mesh.copy_samples([TCP_ECHO], tmp_path / "input"), with_envoy=False)
        envoys = []
        for name, tls in (
            ("with-cert", AdsTls(ca=str(pki / "ca.pem"), cert=str(pki / "client.pem"), key=str(pki / "client.key"))),
            ("without-cert", AdsTls(ca=str(pki / "ca.pem"))),
        ):
            bootstrap = gateway_bootstrap(
                ads_port=mesh.ports.ads,
                admin_port=0,
                ads_api_type=ads_api_type,
                ads_tls=tls,  # type: ignore[arg-type]
            )
            bootstrap["node"]["id"] += f"-{name}"
            work = tmp_path / f"envoy-{name}"
            work.mkdir()
            envoy = EnvoyProcess(bootstrap, work_dir=work, admin_port=0, drain_time_s=1)
            envoys.append(envoy)
            if name == "without-cert":
                break
            envoy.start()
            mesh.envoys.append(envoy)
            mesh.wait_synced()
            envoy.wait_for_listener(f"0.0.0.0_{mesh.port(31400)}")
            assert_split(replies(mesh.port(31400), 20), {"one hello": 1.0})
        # Without a client certificate the handshake fails: the proxy never connects.
        refused = envoys[-1]
        refused.start()
        try:
            refused.wait_for_stat("cluster.xds-grpc.upstream_cx_connect_fail", lambda v: v > 0, timeout=15)
        except Exception:
            stats = refused.stats()
            assert (
                stats.get("cluster.xds-grpc.ssl.connection_error", 0)
                + stats.get("cluster.xds-grpc.upstream_cx_destroy_remote", 0)
                > 0
            ), {k: v for k, v in stats.items() if "xds-grpc" in k and v}
        assert all(p["id"].endswith("with-cert") for p in mesh.control_plane.status()["proxies"])
        refused.stop()
    finally:
        mesh.stop()


def test_serve_refuses_half_tls_options(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpmesh",
            "serve",
            "--config-dir",
            str(tmp_path / "c"),
            "--ads-tls-cert",
            "x.pem",
            "--ads-address",
            "127.0.0.1:0",
            "--http-address",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.returncode == 1
    assert "--ads-tls-cert and --ads-tls-key go together" in proc.stderr
    assert not (tmp_path / ".tcpmesh").exists()  # refused before anything was created in the state dir


def test_loopback_by_default() -> None:
    from tcpmesh.commands.serve import DEFAULT_ADS, DEFAULT_HTTP

    assert DEFAULT_ADS.startswith("127.0.0.1:")
    assert DEFAULT_HTTP.startswith("127.0.0.1:")
    _ = request_json  # the HTTP client the CLI uses talks to these defaults
