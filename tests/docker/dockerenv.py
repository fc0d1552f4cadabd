"""Docker engine, base image and project image for the compose test tier.

Everything here works without an image registry:

* ``ensure_engine`` installs Debian's ``docker.io`` / ``docker-compose`` when they are missing and starts
  ``dockerd`` in the background (log under /tmp) when no engine answers, trying plainer daemon settings
  (vfs storage, no iptables) when the defaults do not come up.
* ``ensure_base_image`` debootstraps a minimal Debian bookworm from the host's own apt mirror, imports it,
  and derives ``tcpmesh-base:bookworm`` (python3 + venv + pip, the host's CA bundle and network pip index
  settings) from it. Both images are cached by tag; the derived one is rebuilt when its inputs change.
* ``build_project_image`` builds ``compose/Dockerfile`` on top of that base, ``build_etcd_image``
  ``compose/etcd.Dockerfile`` (Debian's etcd-server, for compose/docker-compose.ha.yml).

Run by hand: ``python tests/docker/dockerenv.py [engine|base|project|etcd|all]`` (prints step timings).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tcpmesh.runtime.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
BASE_DOCKERFILE = REPO / "scripts" / "docker-base.Dockerfile"
PROJECT_DOCKERFILE = REPO / "compose" / "Dockerfile"
COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"
HA_COMPOSE_FILE = REPO / "compose" / "docker-compose.ha.yml"
ETCD_DOCKERFILE = REPO / "compose" / "etcd.Dockerfile"

SUITE = "bookworm"
ROOTFS_IMAGE = f"tcpmesh-rootfs:{SUITE}"
BASE_IMAGE = os.environ.get("TCPMESH_BASE_IMAGE", f"tcpmesh-base:{SUITE}")
PROJECT_IMAGE = os.environ.get("TCPMESH_TEST_IMAGE", "tcpmesh:docker-tier")
ETCD_IMAGE = os.environ.get("TCPMESH_TEST_ETCD_IMAGE", "tcpmesh-etcd:docker-tier")
BASE_HASH_LABEL = "org.tcpmesh.base-inputs"
DOCKERD_LOG = Path("/tmp/tcpmesh-dockerd.log")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# dockerd settings tried in order; the first that answers wins.
DOCKERD_ATTEMPTS: tuple[tuple[str, ...], ...] = (
    (),
    ("--storage-driver=vfs",),
    ("--storage-driver=vfs", "--iptables=false", "--ip6tables=false"),
)


class EngineUnavailable(RuntimeError):
    """Docker cannot run on this machine at all (the daemon does not come up)."""


class CommandFailed(RuntimeError):
    pass


@dataclass
class Timings:
    steps: list[tuple[str, float, str]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time a step; the body may append a note (e.g. "cached") to the yielded list."""
        notes: list[str] = []
        start = time.monotonic()
        try:
            yield notes
        finally:
            self.steps.append((name, time.monotonic() - start, ", ".join(notes)))

    def lines(self) -> list[str]:
        return [f"{name:<28} {secs:7.1f} s  {note}".rstrip() for name, secs, note in self.steps]


TIMINGS = Timings()


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    input_bytes: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a deadline; output is captured (or written to ``log``) and shown on failure."""
    if log is not None:
        with log.open("wb") as out:
            proc = subprocess.run(
                list(cmd),
                input=input_bytes,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env=env,
                cwd=cwd,
                check=False,
            )
        result = subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(errors="replace"), "")
    else:
        proc_b = subprocess.run(
            list(cmd),
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
        )
        result = subprocess.CompletedProcess(
            proc_b.args,
            proc_b.returncode,
            proc_b.stdout.decode(errors="replace"),
            proc_b.stderr.decode(errors="replace"),
        )
    if check and result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise CommandFailed(f"{shlex.join(cmd)} exited {result.returncode}:\n{tail}")
    return result


# --------------------------------------------------------------------------------------------- engine


def apt_install(packages: Sequence[str]) -> None:
    if not packages:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], timeout=300, env=env)
    run(["apt-get", "install", "-y", "--no-install-recommends", *packages], timeout=600, env=env)


def compose_command() -> list[str]:
    """The compose client: ``$TCPMESH_COMPOSE`` (e.g. "docker compose"), else docker-compose v1."""
    override = os.environ.get("TCPMESH_COMPOSE")
    return shlex.split(override) if override else ["docker-compose"]


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _start_dockerd(extra: Sequence[str], deadline_s: float) -> bool:
    """Start dockerd in its own session (it outlives the tests); True once the API answers."""
    with DOCKERD_LOG.open("ab") as log:
        log.write(f"\n=== tcpmesh: dockerd {' '.join(extra)} ===\n".encode())
        log.flush()
        proc = subprocess.Popen(
            ["dockerd", *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if Path("/var/run/docker.sock").exists() and engine_answers():
            return True
        time.sleep(0.2)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    if proc.poll() is None:
        proc.kill()
    return False


def ensure_engine() -> str:
    """Install the Docker packages if missing and make sure an engine answers; returns a short description."""
    with TIMINGS.step("engine (install + start)") as notes:
        missing = []
        if shutil.which("dockerd") is None or shutil.which("docker") is None:
            missing.append("docker.io")
        if os.environ.get("TCPMESH_COMPOSE") is None and shutil.which("docker-compose") is None:
            missing.append("docker-compose")
        if missing:
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                raise EngineUnavailable(f"{' '.join(missing)} missing and cannot be installed (needs root + apt)")
            apt_install(missing)
            notes.append("installed " + " ".join(missing))
        if engine_answers():
            notes.append("engine already running")
        else:
            for extra in DOCKERD_ATTEMPTS:
                if _start_dockerd(extra, deadline_s=60):
                    notes.append("started dockerd " + (" ".join(extra) or "(defaults)"))
                    break
            else:
                tail = DOCKERD_LOG.read_text(errors="replace")[-3000:] if DOCKERD_LOG.exists() else ""
                raise EngineUnavailable(f"dockerd does not start on this machine; {DOCKERD_LOG}:\n{tail}")
        info = run(["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], timeout=20).stdout.strip()
        notes.append(f"server {info}")
        return info


# ----------------------------------------------------------------------------------------- base image


def image_exists(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], timeout=30, check=False).returncode == 0


def image_label(ref: str, label: str) -> str | None:
    res = run(
        ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', ref],
        timeout=30,
        check=False,
    )
    value = res.stdout.strip()
    return value if res.returncode == 0 and value and value != "<no value>" else None


def _apt_source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def host_debian_mirror(suite: str = SUITE) -> str:
    """The URI of the host's apt source that serves ``suite`` (deb822 ``.sources`` or one-line ``.list``)."""
    if os.environ.get("TCPMESH_DEBIAN_MIRROR"):
        return os.environ["TCPMESH_DEBIAN_MIRROR"]
    for path in _apt_source_files():
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and suite in fields.get("suites", "").split()
                    and fields.get("enabled", "yes").lower() != "no"
                    and fields.get("uris")
                ):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1]
    return DEFAULT_MIRROR


def host_pip_settings() -> tuple[dict[str, str], Path | None]:
    """The host's pip settings that also make sense inside a container, and the CA bundle pip uses.

    Local things (find-links, file:// indexes, constraint files) are dropped: only the network index applies.
    """
    res = run([sys.executable, "-m", "pip", "config", "list"], timeout=60, check=False)
    raw: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        name = key.rsplit(".", 1)[-1]
        raw[name] = value.strip().strip("'\"")
    keep: dict[str, str] = {}
    for name in ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries", "proxy"):
        value = raw.get(name, "")
        if not value:
            continue
        if name in ("index-url", "extra-index-url"):
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if name == "proxy" and re.search(r"//(localhost|127\.|\[::1\])", value):
            continue  # a loopback proxy is not reachable from inside a container
        if value:
            keep["timeout" if name == "default-timeout" else name] = value
    cert = None
    for candidate in (raw.get("cert"), os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE")):
        if candidate and Path(candidate).is_file():
            cert = Path(candidate)
            break
    return keep, cert


def proxy_build_args() -> list[str]:
    """Pass the host's proxy variables to builds (Docker predefines these build args)."""
    args: list[str] = []
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(name):
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    return args


def _debootstrap_rootfs(mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        apt_install(["debootstrap"])
    with tempfile.TemporaryDirectory(prefix="tcpmesh-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        with TIMINGS.step("debootstrap") as notes:
            notes.append(f"{SUITE} minbase from {mirror}")
            run(
                ["debootstrap", "--variant=minbase", SUITE, str(root), mirror],
                timeout=900,
                log=Path(tmp) / "debootstrap.log",
            )
        with TIMINGS.step("docker import rootfs"):
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            try:
                imp = subprocess.run(
                    ["docker", "import", "-", ROOTFS_IMAGE],
                    stdin=tar.stdout,
                    capture_output=True,
                    timeout=600,
                    check=False,
                )
            finally:
                if tar.stdout is not None:
                    tar.stdout.close()
                tar.wait(timeout=600)
            if imp.returncode != 0 or tar.returncode != 0:
                raise CommandFailed(f"docker import failed: {imp.stderr.decode(errors='replace')}")


def ensure_base_image() -> str:
    """``tcpmesh-base:bookworm``, built from a debootstrapped rootfs unless cached with the same inputs."""
    if not image_exists(ROOTFS_IMAGE):
        _debootstrap_rootfs(host_debian_mirror())
    settings, cert = host_pip_settings()
    pip_global = {"cert": "/etc/ssl/certs/ca-certificates.crt", **settings}
    pip_conf_text = "[global]\n" + "".join(f"{k} = {v}\n" for k, v in pip_global.items())
    cert_bytes = cert.read_bytes() if cert else b""
    rootfs_id = run(["docker", "image", "inspect", "--format", "{{.Id}}", ROOTFS_IMAGE], timeout=30).stdout.strip()
    digest = hashlib.sha256()
    for part in (BASE_DOCKERFILE.read_bytes(), pip_conf_text.encode(), cert_bytes, rootfs_id.encode()):
        digest.update(hashlib.sha256(part).digest())
    inputs_hash = digest.hexdigest()[:16]
    with TIMINGS.step("base image") as notes:
        if image_label(BASE_IMAGE, BASE_HASH_LABEL) == inputs_hash:
            notes.append(f"cached {BASE_IMAGE}")
            return BASE_IMAGE
        with tempfile.TemporaryDirectory(prefix="tcpmesh-base-") as tmp:
            ctx = Path(tmp)
            shutil.copy(BASE_DOCKERFILE, ctx / "Dockerfile")
            (ctx / "pip.conf").write_text(pip_conf_text)
            (ctx / "extra-ca").mkdir()
            (ctx / "extra-ca" / ".keep").write_text("")
            if cert_bytes:
                (ctx / "extra-ca" / "host-ca-bundle.crt").write_bytes(cert_bytes)
            run(
                [
                    "docker",
                    "build",
                    "--build-arg",
                    f"ROOTFS_IMAGE={ROOTFS_IMAGE}",
                    *proxy_build_args(),
                    "--label",
                    f"{BASE_HASH_LABEL}={inputs_hash}",
                    "-t",
                    BASE_IMAGE,
                    str(ctx),
                ],
                timeout=900,
                log=Path(tmp) / "build.log",
            )
        notes.append(f"built {BASE_IMAGE}")
    return BASE_IMAGE


def image_id(ref: str) -> str | None:
    res = run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], timeout=30, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def build_project_image(base: str = BASE_IMAGE, tag: str = PROJECT_IMAGE) -> str:
    """Build compose/Dockerfile as ``tag``; the image it replaces is removed (no dangling 500 MB per run)."""
    previous = image_id(tag)
    with TIMINGS.step("project image") as notes:
        log = Path(tempfile.gettempdir()) / "tcpmesh-project-build.log"
        run(
            [
                "docker",
                "build",
                "-f",
                str(PROJECT_DOCKERFILE),
                "--build-arg",
                f"BASE_IMAGE={base}",
                *proxy_build_args(),
                "-t",
                tag,
                str(REPO),
            ],
            timeout=900,
            log=log,
        )
        notes.append(f"{tag} on {base}")
    if previous and previous != image_id(tag):
        run(["docker", "image", "rm", previous], timeout=60, check=False)  # still in use: kept, that's fine
    return tag


def build_etcd_image(base: str = BASE_IMAGE, tag: str = ETCD_IMAGE) -> str:
    """Build compose/etcd.Dockerfile (Debian's etcd-server on the base image) as ``tag``; the layer cache makes
    a rebuild a few seconds."""
    previous = image_id(tag)
    with TIMINGS.step("etcd image") as notes:
        log = Path(tempfile.gettempdir()) / "tcpmesh-etcd-build.log"
        cmd = ["docker", "build", "-f", str(ETCD_DOCKERFILE), "--build-arg", f"BASE_IMAGE={base}"]
        run([*cmd, *proxy_build_args(), "-t", tag, str(ETCD_DOCKERFILE.parent)], timeout=900, log=log)
        notes.append(f"{tag} on {base}")
    if previous and previous != image_id(tag):
        run(["docker", "image", "rm", previous], timeout=60, check=False)
    return tag


# -------------------------------------------------------------------------------------------- compose


@dataclass
class ComposeProject:
    """One ``docker-compose -p NAME`` instance of compose/docker-compose.yml with its own host ports."""

    name: str
    env: dict[str, str]
    files: tuple[Path, ...] = (COMPOSE_FILE,)

    @classmethod
    def create(
        cls,
        *,
        image: str,
        config_dir: Path,
        name: str | None = None,
        compose_file: Path = COMPOSE_FILE,
        more_ports: Sequence[str] = (),
        more_env: dict[str, str] | None = None,
    ) -> ComposeProject:
        names = ("TCPMESH_GATEWAY_PORT", "TCPMESH_GATEWAY2_PORT", "TCPMESH_ENVOY_ADMIN_PORT", "TCPMESH_ADS_PORT")
        names += ("TCPMESH_HTTP_PORT", *more_ports)
        ports = {var: str(port) for var, port in zip(names, free_ports(len(names)), strict=True)}
        env = {
            **os.environ,
            **ports,
            "TCPMESH_IMAGE": image,
            "TCPMESH_BASE_IMAGE": BASE_IMAGE,
            "TCPMESH_CONFIG_DIR": str(config_dir),
            **(more_env or {}),
        }
        extra = tuple(Path(f) for f in os.environ.get("TCPMESH_COMPOSE_OVERRIDE", "").split(os.pathsep) if f)
        project = name or f"tcpmesh-test-{os.getpid()}-{secrets.token_hex(3)}"
        return cls(name=project, env=env, files=(compose_file, *extra))

    def port(self, var: str) -> int:
        return int(self.env[var])

    def compose(self, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [a for f in self.files for a in ("-f", str(f))]
        return run([*compose_command(), *files, "-p", self.name, *args], timeout=timeout, check=check, env=self.env)

    def up(self) -> None:
        self.compose("up", "-d", "--no-build", timeout=300)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180)

    def containers(self, *, all_states: bool = True) -> list[str]:
        cmd = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}"]
        out = run([*cmd, "-a"] if all_states else cmd, timeout=30).stdout
        return out.split()

    def networks(self) -> list[str]:
        out = run(
            ["docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.name}"],
            timeout=30,
        ).stdout
        return out.split()

    def states(self) -> dict[str, tuple[str, str]]:
        """service -> (container state, health status or "")."""
        ids = self.containers()
        if not ids:
            return {}
        fmt = (
            '{{ index .Config.Labels "com.docker.compose.service" }} {{ .State.Status }} '
            "{{ if .State.Health }}{{ .State.Health.Status }}{{ end }}"
        )
        out = run(["docker", "inspect", "--format", fmt, *ids], timeout=30).stdout
        states: dict[str, tuple[str, str]] = {}
        for line in out.splitlines():
            parts = line.split()
            if parts:
                states[parts[0]] = (parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")
        return states

    def wait_healthy(self, services: Sequence[str], deadline_s: float) -> dict[str, tuple[str, str]]:
        deadline = time.monotonic() + deadline_s
        states: dict[str, tuple[str, str]] = {}
        while time.monotonic() < deadline:
            states = self.states()
            dead = {s: st for s, st in states.items() if st[0] in ("exited", "dead")}
            if dead:
                raise CommandFailed(f"containers stopped while starting: {dead}")
            if all(states.get(s, ("", ""))[1] == "healthy" for s in services):
                return states
            time.sleep(0.5)
        raise CommandFailed(f"not healthy within {deadline_s:.0f} s: {states}")

    def logs(self, tail: int = 200) -> str:
        res = self.compose("logs", "--no-color", "--tail", str(tail), timeout=60, check=False)
        return res.stdout + res.stderr


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("what", choices=["engine", "base", "project", "etcd", "all"], nargs="?", default="all")
    args = parser.parse_args(argv)
    try:
        ensure_engine()
        if args.what in ("base", "project", "etcd", "all"):
            ensure_base_image()
        if args.what in ("project", "all"):
            build_project_image()
        if args.what in ("etcd", "all"):
            build_etcd_image()
    except EngineUnavailable as exc:
        print(f"docker engine unavailable: {exc}", file=sys.stderr)
        return 3
    finally:
        print("\n".join(TIMINGS.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
