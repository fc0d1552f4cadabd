"""Echo "pods": one process per Deployment replica, on the pod's own loopback address, following the config."""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tcpmesh.echo import EchoSettings, echo_settings_for_container
from tcpmesh.model.config import Config
from tcpmesh.runtime.lifetime import die_with_parent
from tcpmesh.runtime.polling import wait_until
from tcpmesh.translator.workloads import DEFAULT_POD_NETWORK, Pod, pods_of

__all__ = ["PodProcess", "PodSupervisor", "echo_command"]


def _accepts(proc: PodProcess, port: int) -> bool:
    if proc.process.poll() is not None:
        raise RuntimeError(f"pod {proc.pod.name} exited ({proc.process.returncode}); see {proc.log_path}")
    try:
        with socket.create_connection((proc.pod.ip, port), timeout=1):
            return True
    except OSError:
        return False


log = logging.getLogger(__name__)


def echo_command(pod: Pod, settings: EchoSettings) -> list[str]:
    cmd = [sys.executable, "-m", "tcpmesh.echo", "--host", pod.ip, "--ports", ",".join(map(str, settings.ports))]
    if settings.mode == "http":
        cmd += ["--http", "--prefix", settings.prefix or "", "--pod", pod.name]
        if settings.status != 200:
            cmd += ["--status", str(settings.status)]
    elif settings.mode == "prefix":
        cmd += ["--prefix", settings.prefix or ""]
    else:
        cmd += [
            "--banner",
            "--node",
            "tcpmesh-local",
            "--pod",
            pod.name,
            "--namespace",
            pod.namespace,
            "--ip",
            pod.ip,
            "--service",
            "default",
        ]
    return cmd


@dataclass
class PodProcess:
    pod: Pod
    command: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path


class PodSupervisor:
    """Starts, stops and replaces echo pods so they match the Deployments of the accepted config."""

    def __init__(self, log_dir: Path, pod_network: str = DEFAULT_POD_NETWORK) -> None:
        self.log_dir = log_dir
        self.pod_network = pod_network
        self.running: dict[str, PodProcess] = {}
        self.unsupported: dict[str, str] = {}

    def desired(self, config: Config) -> dict[str, tuple[Pod, list[str]]]:
        out: dict[str, tuple[Pod, list[str]]] = {}
        self.unsupported = {}
        for pod in pods_of(config, self.pod_network):
            for container in pod.containers:
                try:
                    settings = echo_settings_for_container(
                        container.image, container.args, [p for _, p in container.ports], env=dict(container.env)
                    )
                except ValueError as exc:
                    self.unsupported[pod.name] = f"{container.image}: {exc}"
                    continue
                if settings is None:
                    self.unsupported[pod.name] = (
                        f"image {container.image!r} is not one tcpmesh can run locally "
                        "(known: istio/tcp-echo-server, the tcptest banner server, Bookinfo's images, httpbin, "
                        "tcpmesh-http-echo); declare it as a WorkloadEntry"
                    )
                    continue
                out[f"{pod.namespace}/{pod.name}/{container.name}"] = (pod, echo_command(pod, settings))
        return out

    def reconcile(self, config: Config) -> None:
        desired = self.desired(config)
        for key in list(self.running):
            proc = self.running[key]
            want = desired.get(key)
            if want is None or want[1] != proc.command or proc.process.poll() is not None:
                self._stop(key)
        for key, (pod, command) in desired.items():
            if key not in self.running:
                self._start(key, pod, command)
        for name, reason in sorted(self.unsupported.items()):
            log.warning("pod %s not started: %s", name, reason)

    def _start(self, key: str, pod: Pod, command: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"pod-{pod.namespace}-{pod.name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.running[key] = PodProcess(pod, command, process, log_path)
        log.info("pod %s started on %s (pid %d)", pod.name, pod.ip, process.pid)

    def _stop(self, key: str, timeout: float = 5.0) -> None:
        proc = self.running.pop(key)
        if proc.process.poll() is None:
            proc.process.send_signal(signal.SIGTERM)
            try:
                proc.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.process.pid, signal.SIGKILL)
                proc.process.wait(timeout)
        log.info("pod %s stopped", proc.pod.name)

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every running pod accepts connections on each of its ports (a readiness probe)."""
        for proc in list(self.running.values()):
            ports = proc.command[proc.command.index("--ports") + 1].split(",")
            for port in ports:
                wait_until(
                    functools.partial(_accepts, proc, int(port)),
                    timeout=timeout,
                    what=f"pod {proc.pod.name} to listen on {proc.pod.ip}:{port}",
                )

    def kill(self, pod_name: str) -> bool:
        """SIGKILL one pod (for failure tests); reconcile() starts it again."""
        for proc in self.running.values():
            if proc.pod.name == pod_name and proc.process.poll() is None:
                proc.process.kill()
                proc.process.wait(5)
                return True
        return False

    def stop_all(self) -> None:
        for key in list(self.running):
            self._stop(key)
