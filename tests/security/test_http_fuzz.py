"""A hypothesis fuzz of the HTTP API of a real `tcpmesh serve`: methods, paths, headers, content types and bodies
(valid YAML, broken YAML, JSON, binary). Whatever it sends, the answer is never a 5xx and never a traceback."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpmesh.runtime.polling import wait_until
from tests.security.conftest import SAMPLES, Server

PATHS = [
    "/healthz", "/readyz", "/metrics", "/debug/syncz", "/debug/config_dump", "/debug/config_dump?type=clusters",
    "/debug/config_dump?proxy=x&type=bogus", "/api/apply", "/api/delete", "/api/resources", "/api/resources?kind=vs",
    "/api/resources?kind=%ff", "/api/apply?source=%00&namespace=..", "/nope", "//", "/api/apply?namespace=" + "x" * 300,
]  # fmt: skip
MEDIA = ["application/yaml", "application/x-yaml", "application/json", "text/plain", "multipart/form-data",
         "application/x-www-form-urlencoded", "APPLICATION/YAML; charset=latin-1",
         "application/yaml;;;", ""]  # fmt: skip
SAMPLE = (SAMPLES / "tcp-echo-shift" / "tcp-echo-20-v2.yaml").read_bytes()
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
yamlish = st.sampled_from([b"", b"{", b"- - -", b"kind: [", b"a: *b", b"!!python/object:os.system x",
                           b"\xff\xfe", b"{}", b"[]", b"null", b'{"kind": "Gateway"}', SAMPLE,
                           SAMPLE.replace(b"20", b"1e400")])  # fmt: skip
bodies = st.one_of(
    st.none(), st.binary(max_size=300), yamlish, st.builds(lambda a, b: a + b, yamlish, st.binary(max_size=40))
)


@settings(max_examples=150)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"]),
    path=st.one_of(st.sampled_from(PATHS), st.from_regex(r"\A/[a-z/?=&%0-9]{0,30}\Z")),
    media=st.one_of(st.sampled_from(MEDIA), header_text),
    auth=st.sampled_from(["good", "none", "bad", "basic", "empty-bearer"]),
    host=st.sampled_from(["good", "evil", "none", "garbage", "ipv6"]),
    origin=st.one_of(st.none(), st.sampled_from(["same", "null", "http://evil.example"]), header_text),
    extra=st.dictionaries(st.sampled_from(["Sec-Fetch-Site", "X-Forwarded-Host", "Accept", "Cookie"]), header_text),
    body=bodies,
)
def test_api_never_answers_5xx(
    server: Server,
    method: str,
    path: str,
    media: str,
    auth: str,
    host: str,
    origin: str | None,
    extra: dict[str, str],
    body: bytes | None,
) -> None:
    headers: dict[str, str] = dict(extra)
    hosts = {"good": server.host, "evil": "evil.example", "garbage": "::::[[", "ipv6": f"[::1]:{server.port}"}
    if host in hosts:
        headers["Host"] = hosts[host]
    tokens = {"good": f"Bearer {server.cp.token}", "bad": "Bearer x", "basic": "Basic eA==", "empty-bearer": "Bearer "}
    if auth in tokens:
        headers["Authorization"] = tokens[auth]
    if media:
        headers["Content-Type"] = media
    if origin is not None:
        headers["Origin"] = f"http://{server.host}" if origin == "same" else origin
    reply = server.request(method, path, headers, body)
    assert reply.status < 500, (reply.status, reply.body[:500])
    assert b"Traceback" not in reply.body
    assert not [h for h in reply.headers if h.startswith("access-control-")]
    if (
        method != "HEAD"
        and 400 <= reply.status < 500
        and reply.headers.get("content-type", "").startswith("application/json")
    ):
        assert json.loads(reply.body)  # a reason, not an empty refusal


def test_malformed_requests_leave_no_traceback_in_the_log(server: Server) -> None:
    """aiohttp's own refusals (here: no Host header) are one warning line, not a logged traceback."""
    start = server.cp.log_path.stat().st_size
    for _ in range(3):
        assert server.request("GET", "/healthz", {}).status == 400

    def logged() -> bool:
        return "refused a malformed HTTP request" in server.cp.log_path.read_bytes()[start:].decode()

    wait_until(logged, timeout=10, interval=0.05, what="the refusal in the log")
    assert "Traceback" not in server.cp.log_path.read_text()
