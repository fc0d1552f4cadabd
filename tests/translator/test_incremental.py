"""IncrementalTranslator.update(config) equals translate(config) after every edit of a random edit sequence."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpmesh.model.config import NO_LINEAGE, Config, load_config_text
from tcpmesh.model.resources import Resource
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tcpmesh.translator.incremental import IncrementalTranslator
from tests.pki import TestCA, secret_yaml
from tests.references import walked

SERVICES = 6
PORTS = (31400, 31401, 31402, 31403)


def _one(text: str) -> Resource:
    config, problems = load_config_text(text)
    assert not [p for p in problems if p.is_error], problems
    (resource,) = config.resources()
    return resource


def _service(i: int, port: int = 9000, app: str = "") -> Resource:
    return _one(
        f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: default}}
spec:
  ports: [{{name: tcp, port: {port}}}]
  selector: {{app: {app or f"svc-{i}"}}}
"""
    )


def _workload(i: int, version: str, address: str, weight: int = 0, app: str = "") -> Resource:
    weight_line = f"\n  weight: {weight}" if weight else ""
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: svc-{i}-{version}, namespace: default}}
spec:
  address: {address}
  ports: {{tcp: 9000}}
  labels: {{app: {app or f"svc-{i}"}, version: {version}}}{weight_line}
"""
    )


def _rule(i: int, idle: int = 0, wildcard: bool = False, labels: str = "v1") -> Resource:
    policy = f"\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        idleTimeout: {idle}s" if idle else ""
    host = "*.default.svc.cluster.local" if wildcard else f"svc-{i}.default.svc.cluster.local"
    name = f"wild-{i}" if wildcard else f"svc-{i}"
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: default}}
spec:
  host: "{host}"{policy}
  subsets:
  - name: v1
    labels: {{version: {labels}}}
  - name: v2
    labels: {{version: v2}}
"""
    )


def _virtual_service(i: int, port: int, w1: int, w2: int, host: int | None = None, any_port: bool = False) -> Resource:
    target = f"svc-{i if host is None else host}.default.svc.cluster.local"
    match = "" if any_port else f"\n  - match:\n    - port: {port}"
    lead = "\n  -" if any_port else "\n   "
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:{match}{lead} route:
    - destination: {{host: {target}, port: {{number: 9000}}, subset: v1}}
      weight: {w1}
    - destination: {{host: {target}, port: {{number: 9000}}, subset: v2}}
      weight: {w2}
"""
    )


def _gateway(ports: tuple[int, ...], credential: str = "") -> Resource:
    """``credential``: the first port terminates TLS with that credentialName (SDS)."""
    tcp = [f"\n  - port: {{number: {p}, name: tcp-{p}, protocol: TCP}}\n    hosts: ['*']" for p in ports]
    if credential:
        tls = f"\n    tls: {{mode: MUTUAL, credentialName: {credential}}}"
        tcp[0] = f"\n  - port: {{number: {ports[0]}, name: tls-{ports[0]}, protocol: TLS}}\n    hosts: ['*']{tls}"
    servers = "".join(tcp)
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:{servers}
"""
    )


def _base() -> dict[str, list[Any]]:
    return {
        "gateways": [_gateway(PORTS)],
        "virtual_services": [_virtual_service(i, PORTS[i], 80, 20) for i in range(len(PORTS))],
        "destination_rules": [_rule(i, idle=30 if i == 1 else 0) for i in range(SERVICES)],
        "services": [_service(i) for i in range(SERVICES)],
        "workload_entries": [
            _workload(i, v, f"10.0.{i}.{n}") for i in range(SERVICES) for n, v in ((1, "v1"), (2, "v2"))
        ],
        "service_entries": [],
        "deployments": [],
        "secrets": [],
    }


_CA = TestCA()
_ISSUED = [_CA.issue(["gw.example.com"]) for _ in range(3)]
CREDENTIALS = ("cred-a", "cred-b", "missing")


def _secret(name: str, issued: int, with_ca: bool) -> Resource:
    return _one(secret_yaml(name, "istio-system", _ISSUED[issued], ca=_CA.pem if with_ca else None))


def _tls_rule(i: int, credential: str) -> Resource:
    return _one(
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}, namespace: default}}
spec:
  host: svc-{i}.default.svc.cluster.local
  trafficPolicy:
    tls: {{mode: MUTUAL, credentialName: {credential}}}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
"""
    )


def _config(parts: dict[str, list[Any]], previous: Config | None = None) -> Config:
    """The config of `parts`; after `previous`, in most steps with the lineage a store would give it (the
    positions its in-place edits replaced), which the translator then trusts instead of comparing; in the others
    without one (a full read, the Gateway API's conversion), so the comparing path is tested too."""
    fields = {k: tuple(v) for k, v in parts.items()}
    lineage = NO_LINEAGE
    if previous is not None and len(fields["virtual_services"]) % 3 == 0:
        return Config(**fields)
    for name, new in fields.items():
        old = getattr(previous, name) if previous is not None else None
        if old is not None and old is not new and len(old) == len(new):
            lineage = lineage.then(
                name, old, new, [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a is not b]
            )
    return Config(**fields, lineage=lineage)


def _replace_or_add(items: list[Any], new: Any) -> None:
    for pos, old in enumerate(items):
        if (old.meta.namespace, old.meta.name) == (new.meta.namespace, new.meta.name):
            items[pos] = new
            return
    items.append(new)


def _edit(rnd: random.Random, parts: dict[str, list[Any]]) -> str:
    i = rnd.randrange(SERVICES)
    op = rnd.randrange(18)
    if op == 15:
        parts["gateways"] = [_gateway(PORTS, credential=rnd.choice(CREDENTIALS))]
        return "gateway tls credential"
    if op == 16:
        secrets = parts["secrets"]
        if secrets and rnd.random() < 0.3:
            secrets.pop(rnd.randrange(len(secrets)))
            return "secret removed"
        name = rnd.choice(CREDENTIALS[:2])
        _replace_or_add(secrets, _secret(name, rnd.randrange(len(_ISSUED)), rnd.random() < 0.7))
        return "secret applied (rotation)"
    if op == 17:
        _replace_or_add(parts["destination_rules"], _tls_rule(i, rnd.choice(CREDENTIALS)))
        return "dr tls credential"
    vs_i = rnd.randrange(len(PORTS))
    if op <= 3:  # the common case: a weight edit
        w1 = rnd.choice((0, 20, 50, 80, 100))
        _replace_or_add(parts["virtual_services"], _virtual_service(vs_i, PORTS[vs_i], w1, 100 - w1))
        return "vs weights"
    if op == 4:
        _replace_or_add(parts["virtual_services"], _virtual_service(vs_i, rnd.choice(PORTS), 50, 50, host=i))
        return "vs port and host"
    if op == 5:
        _replace_or_add(parts["virtual_services"], _virtual_service(vs_i, 0, 60, 40, host=i, any_port=True))
        return "vs any port"
    if op == 6:
        vss = parts["virtual_services"]
        if vss:
            vss.pop(rnd.randrange(len(vss)))
        return "vs removed"
    if op == 7:
        _replace_or_add(
            parts["destination_rules"], _rule(i, idle=rnd.choice((0, 10, 30)), labels=rnd.choice(("v1", "v2")))
        )
        return "dr edited"
    if op == 8:
        rules = parts["destination_rules"]
        if rnd.random() < 0.5 and rules:
            rules.pop(rnd.randrange(len(rules)))
            return "dr removed"
        _replace_or_add(rules, _rule(i, idle=rnd.choice((0, 5)), wildcard=True))
        return "wildcard dr"
    if op == 9:
        _replace_or_add(parts["services"], _service(i, port=rnd.choice((9000, 9001)), app=rnd.choice(("", "shared"))))
        return "service edited"
    if op == 10:
        services = parts["services"]
        if services:
            services.pop(rnd.randrange(len(services)))
        else:
            services.append(_service(i))
        return "service removed"
    if op == 11:
        version = rnd.choice(("v1", "v2"))
        _replace_or_add(
            parts["workload_entries"],
            _workload(
                i, version, f"10.9.{i}.{rnd.randrange(1, 9)}", weight=rnd.choice((0, 3)), app=rnd.choice(("", "shared"))
            ),
        )
        return "workload edited"
    if op == 12:
        wes = parts["workload_entries"]
        if wes:
            wes.pop(rnd.randrange(len(wes)))
        return "workload removed"
    if op == 14:
        vss = parts["virtual_services"]
        if vss:
            at = rnd.randrange(len(vss))
            vss[at] = _drained(vss[at], rnd.choice((None, 0.0, 0.3, 1.0)))
        return "vs drain"
    ports = tuple(p for p in PORTS if rnd.random() < 0.8) or PORTS[:1]
    parts["gateways"] = [_gateway(ports)]
    return "gateway servers"


def _as_bytes(resources: Any) -> list[Any]:
    """The resources' names and bytes, and the references the translator reported with them (checked against
    a walk of the messages first), to compare an incremental result with a full translation."""
    assert resources.references == walked(resources)
    out: list[Any] = [resources.references]
    for messages in (
        resources.listeners,
        resources.clusters,
        resources.endpoints,
        resources.extension_configs,
        resources.secrets,
    ):
        out.append(
            [(getattr(m, "name", "") or m.cluster_name, m.SerializeToString(deterministic=True)) for m in messages]
        )
    return out


GATEWAY = Proxy()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=16))
def test_incremental_equals_full_translate(rnd: random.Random, edits: int) -> None:
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    config = _config(parts)
    got = inc.update(config)
    expected = _as_bytes(translate(config, GATEWAY))
    assert _as_bytes(got) == expected
    history = []
    for _ in range(edits):
        if rnd.random() < 0.5:  # the publisher's way after a full translation (else the edit settles it)
            inc.settle()
        history.append(_edit(rnd, parts))
        config = _config(parts, config)
        if rnd.random() < 0.4:  # the publisher's way: advance, without asking for the whole result
            inc.advance(config)
            continue
        earlier, before = got, expected
        got = inc.update(config)
        expected = _as_bytes(translate(config, GATEWAY))
        assert _as_bytes(got) == expected, history
        assert _as_bytes(earlier) == before, history  # a returned result is a value: later edits leave it be
    assert _as_bytes(inc.resources) == _as_bytes(translate(config, GATEWAY)), history


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=16))
def test_incremental_equals_full_translate_with_credentials(rnd: random.Random, edits: int) -> None:
    """The same, starting from a TLS server and a DestinationRule with credentials and their Secrets, so most
    steps serve Secrets (rotations, removals, references moving between them)."""
    parts = _base()
    parts["gateways"] = [_gateway(PORTS, credential="cred-a")]
    parts["destination_rules"][0] = _tls_rule(0, "cred-b")
    parts["secrets"] = [_secret("cred-a", 0, True), _secret("cred-b", 1, True)]
    inc = IncrementalTranslator(GATEWAY)
    config = _config(parts)
    assert _as_bytes(inc.update(config)) == _as_bytes(translate(config, GATEWAY))
    history = []
    for _ in range(edits):
        history.append(_edit(rnd, parts))
        config = _config(parts, config)
        got = inc.update(config)
        assert _as_bytes(got) == _as_bytes(translate(config, GATEWAY)), history


def test_weight_edit_changes_one_extension_config_only() -> None:
    """Connection-preserving mode: the listener keeps its bytes (Envoy drains nothing), its tcp_proxy changes."""
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    assert inc.changes.mode == "full"
    parts["virtual_services"][2] = _virtual_service(2, PORTS[2], 30, 70)
    got = inc.update(_config(parts))
    assert inc.changes.mode == "incremental"
    assert inc.changes.changed["extension_configs"] == {f"0.0.0.0_{PORTS[2]}~tcp_proxy"}
    assert not inc.changes.changed.get("listeners")
    assert not inc.changes.changed.get("clusters")
    assert not inc.changes.changed.get("endpoints")
    assert inc.changes.rebuilt <= 4  # listener, its tcp_proxy and drain configs, BlackHoleCluster (any cluster view)
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY))


def test_weight_edit_rebuilds_one_listener_with_inline_weights() -> None:
    parts = _base()
    options = TranslateOptions(inline_weights=True)
    inc = IncrementalTranslator(GATEWAY, options)
    inc.update(_config(parts))
    parts["virtual_services"][2] = _virtual_service(2, PORTS[2], 30, 70)
    got = inc.update(_config(parts))
    assert inc.changes.mode == "incremental"
    assert inc.changes.changed["listeners"] == {f"0.0.0.0_{PORTS[2]}"}
    assert not inc.changes.changed.get("extension_configs")
    assert got.extension_configs == ()
    assert inc.changes.rebuilt <= 2  # the listener, plus BlackHoleCluster (always rebuilt with any cluster view)
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY, options))


def test_unchanged_config_returns_same_resources() -> None:
    inc = IncrementalTranslator(GATEWAY)
    config = _config(_base())
    first = inc.update(config)
    assert inc.update(config) is first
    assert inc.update(dataclasses.replace(config)).listeners is first.listeners


def test_workload_edit_rebuilds_its_services_endpoints() -> None:
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    parts["workload_entries"][0] = _workload(0, "v1", "10.7.7.7")
    got = inc.update(_config(parts))
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY))
    assert inc.changes.changed["endpoints"] == {
        "outbound|9000||svc-0.default.svc.cluster.local",
        "outbound|9000|v1|svc-0.default.svc.cluster.local",
    }
    assert not inc.changes.changed.get("listeners")


def test_sidecars_fall_back_to_full_translation() -> None:
    proxy = Proxy(
        role="sidecar", id="sidecar~10.0.0.1~a.default~default.svc.cluster.local", namespace="default", labels=()
    )
    parts = _base()
    inc = IncrementalTranslator(proxy)
    inc.update(_config(parts))
    parts["virtual_services"][0] = _virtual_service(0, PORTS[0], 10, 90)
    got = inc.update(_config(parts))
    assert inc.changes.mode == "full"
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), proxy))


def test_edit_after_an_equal_reapply_replaces_the_rule() -> None:
    """A re-applied, equal object is a new object: the next real edit must still find the rule it replaces."""
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    parts["destination_rules"][0] = _rule(0)  # equal content, new object: nothing to rebuild
    inc.update(_config(parts))
    assert inc.changes.mode == "unchanged"
    parts["destination_rules"][0] = _rule(0, idle=30, labels="v2")
    got = inc.update(_config(parts))
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY))


def test_renamed_cluster_keeps_name_order() -> None:
    """A Service port change removes one cluster name and adds another: the output stays sorted by name."""
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    parts["services"][4] = _service(4, port=9001)
    got = inc.update(_config(parts))
    assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY))
    names = [c.name for c in got.clusters]
    assert names == sorted(names)


def _drained(vs: Any, fraction: float | None) -> Any:
    """``vs`` with a drain of v1 at ``fraction`` (None: no drain)."""
    from tcpmesh.model.drain import drain_annotation

    annotations = () if fraction is None else (drain_annotation("v1", "2026-12-02T01:00:00.000Z", fraction),)
    return dataclasses.replace(vs, meta=dataclasses.replace(vs.meta, annotations=annotations))


def test_a_drain_step_changes_the_drained_endpoints_only() -> None:
    """Each step of `tcpmesh drain` is an annotation edit: v1's ClusterLoadAssignment changes, nothing else."""
    parts = _base()
    inc = IncrementalTranslator(GATEWAY)
    inc.update(_config(parts))
    original = parts["virtual_services"][1]
    for fraction in (0.0, 0.5, 1.0, None):
        parts["virtual_services"][1] = _drained(original, fraction)
        got = inc.update(_config(parts))
        assert inc.changes.mode == "incremental"
        assert inc.changes.changed["endpoints"] == {"outbound|9000|v1|svc-1.default.svc.cluster.local"}, fraction
        assert not any(inc.changes.changed.get(k) for k in ("listeners", "clusters", "extension_configs"))
        assert _as_bytes(got) == _as_bytes(translate(_config(parts), GATEWAY))
