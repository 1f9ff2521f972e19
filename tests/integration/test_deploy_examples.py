"""examples/deploy/ (docs/deployment.md): what can be checked without Docker or Kubernetes.

* The manifests parse, and agree with each other and with the app they deploy: labels and
  selectors, the autoscalers' target, their replica cap and the partitions, the metric and
  its labels, the streams and the consumer group.
* The container's command line is one `runnel worker` accepts; its HTTP port is the one the
  probes use; the probes' paths are the endpoint's; the environment names settings that
  exist; Kubernetes waits longer than the worker's grace period before SIGKILL.
* The Dockerfile's commands run, as written, in a plain venv made from this checkout, and
  the container's command then serves /healthz and /readyz against a real redis-server
  (with a password, read from a file as the Deployment mounts it) and exits 0 on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from runnel.adapters.http.endpoint import PATHS
from runnel.domain.metrics import CATALOGUE
from runnel.entrypoints.cli import worker as worker_command
from runnel.settings import Settings
from tests.servers import free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
MANIFESTS = DEPLOY / "kubernetes"
MARGIN = 10.0
"""Seconds Kubernetes must leave, past grace_period, for acknowledgements and releases."""


def documents() -> list[dict[str, Any]]:
    """Every YAML document under examples/deploy/kubernetes/."""
    found: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{path.name}: a document that is not a mapping"
            found.append(document)
    return found


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one document of ``kind`` (and ``name``)."""
    matches = [
        d
        for d in documents()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"{len(matches)} {kind} documents named {name}"
    return matches[0]


def container() -> dict[str, Any]:
    (only,) = the("Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def environment() -> dict[str, str]:
    return {item["name"]: item["value"] for item in container()["env"]}


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.fixture(scope="module")
def shop() -> Iterator[Any]:
    """examples/orders_app.py, the app the image runs."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import orders_app

        yield orders_app
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_every_manifest_parses_with_the_kinds_the_guide_describes() -> None:
    kinds = sorted((d["apiVersion"], d["kind"]) for d in documents())
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
        ("policy/v1", "PodDisruptionBudget"),
    ]


def test_the_selectors_match_the_pods() -> None:
    deployment = the("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    budget = the("PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"] == selector
    assert budget["maxUnavailable"] == 1
    assert deployment["spec"]["replicas"] > budget["maxUnavailable"]


def test_the_autoscalers_scale_the_deployment_up_to_the_partition_count(shop: Any) -> None:
    name = the("Deployment")["metadata"]["name"]
    for scaler in (d for d in documents() if d["kind"] == "ScaledObject"):
        spec = scaler["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["maxReplicaCount"] == shop.orders.partition_count


def test_the_lag_query_names_a_metric_and_labels_runnel_exports(shop: Any) -> None:
    (trigger,) = the("ScaledObject", "shop-worker")["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    found = re.fullmatch(r"sum\((?P<metric>\w+)\{(?P<labels>[^}]*)\}\)", query)
    assert found is not None, query
    spec = CATALOGUE[found["metric"]]
    labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
    assert set(labels) <= set(spec.labels)
    assert labels == {"app": shop.app.name, "stream": "orders", "processor": "running_totals"}
    assert "running_totals" in {p.name for p in shop.app.processor_specs()}
    assert float(trigger["metadata"]["threshold"]) > 0


def test_the_stream_triggers_watch_every_partition_with_the_processors_group(shop: Any) -> None:
    triggers = the("ScaledObject", "shop-worker-streams")["spec"]["triggers"]
    auth = the("TriggerAuthentication", "shop-redis")["metadata"]["name"]
    streams = []
    for trigger in triggers:
        assert trigger["type"] == "redis-streams"
        assert trigger["authenticationRef"]["name"] == auth
        assert trigger["metadata"]["consumerGroup"] == "running_totals"
        assert int(trigger["metadata"]["lagCount"]) > 0
        streams.append(trigger["metadata"]["stream"])
    expected = [shop.orders.keys.stream(n) for n in range(shop.orders.partition_count)]
    assert streams == [s.decode() if isinstance(s, bytes) else s for s in expected]


def test_the_probes_use_the_endpoint_the_command_line_opens() -> None:
    spec = container()
    port = int(option(spec["args"], "--http").rpartition(":")[2])
    (metrics,) = [p for p in spec["ports"] if p["name"] == "metrics"]
    assert metrics["containerPort"] == port
    probes = {name: spec[name]["httpGet"] for name in ("startupProbe", "readinessProbe")}
    probes["livenessProbe"] = spec["livenessProbe"]["httpGet"]
    for probe in probes.values():
        assert probe["port"] in ("metrics", port)
        assert probe["path"] in PATHS
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/readyz"


def test_the_arguments_and_environment_are_ones_runnel_reads() -> None:
    spec = container()
    options = {name for param in worker_command.params for name in param.opts}
    envvars = {param.envvar for param in worker_command.params if isinstance(param.envvar, str)}
    for arg in spec["args"]:
        if arg.startswith("--"):
            assert arg in options, f"runnel worker has no option {arg}"
    settings = {f"RUNNEL_{name.upper()}" for name in Settings.model_fields}
    for name in environment():
        assert name in settings | envvars, f"runnel reads no {name}"


def test_kubernetes_waits_for_the_grace_period_before_killing() -> None:
    grace = float(environment().get("RUNNEL_DEFAULT_GRACE_PERIOD", Settings().default_grace_period))
    pod = the("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= grace + MARGIN


@dataclass
class Image:
    """The Dockerfile's instructions, stage by stage."""

    stages: list[list[tuple[str, str]]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Image:
        image = cls()
        logical = re.sub(r"\\\n", " ", text)
        for line in logical.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instruction, _, rest = line.partition(" ")
            if instruction.upper() == "FROM":
                image.stages.append([])
            image.stages[-1].append((instruction.upper(), rest.strip()))
        return image

    def last(self, instruction: str) -> str:
        (value,) = [rest for name, rest in self.stages[-1] if name == instruction][-1:]
        return value


def _ignored(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_dockerfile_runs_as_root_nowhere_and_stops_with_sigterm() -> None:
    image = Image.parse((DEPLOY / "Dockerfile").read_text())
    assert len(image.stages) == 2
    assert image.last("USER") not in ("root", "0")
    assert image.last("STOPSIGNAL") == "SIGTERM"
    assert json.loads(image.last("ENTRYPOINT"))[:2] == ["runnel", "worker"]


def test_the_image_commands_run_and_the_worker_serves_its_probes(tmp_path: Path) -> None:
    image = Image.parse((DEPLOY / "Dockerfile").read_text())
    base = Path(getattr(sys, "_base_executable", sys.executable))
    paths = {"/src": tmp_path / "src", "/venv": tmp_path / "venv", "/app": tmp_path / "app"}

    def local(text: str) -> str:
        return re.sub(r"(?<![\w./-])(/src|/venv|/app)(?![\w.-])", lambda m: str(paths[m[1]]), text)

    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)
    workdir = tmp_path
    for stage in image.stages:
        for instruction, rest in stage:
            if instruction == "ENV":
                for name, value in re.findall(r"(\w+)=(\S+)", rest):
                    env[name] = local(value).replace("$PATH", env.get("PATH", ""))
            elif instruction == "WORKDIR":
                workdir = Path(local(rest))
                workdir.mkdir(parents=True, exist_ok=True)
            elif instruction == "COPY" and not rest.startswith("--from="):
                source, target = shlex.split(rest)
                if source == ".":
                    ignore = _ignored((DEPLOY / "Dockerfile.dockerignore").read_text())
                    shutil.copytree(ROOT, local(target), ignore=shutil.ignore_patterns(*ignore))
                else:
                    shutil.copyfile(ROOT / source, local(target))
            elif instruction == "RUN":
                command = local(rest)
                command = re.sub(r"^python(?=\s)", shlex.quote(str(base)), command)
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert done.returncode == 0, f"RUN {rest}\n{done.stdout}\n{done.stderr}"

    entrypoint = json.loads(image.last("ENTRYPOINT"))
    default_args = json.loads(image.last("CMD"))
    runnel = shutil.which(entrypoint[0], path=env["PATH"])
    assert runnel is not None
    assert runnel.startswith(str(paths["/venv"]))

    usage = subprocess.run(
        [runnel, *entrypoint[1:], *default_args, "--help"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 0, usage.stderr

    password = "docs-deploy-secret"
    secret = tmp_path / "secrets" / "password"
    secret.parent.mkdir()
    secret.write_text(password + "\n")
    with running_server(args=["--requirepass", password]) as server:
        port = free_port()
        worker_env = {**env, **environment()}
        worker_env["RUNNEL_REDIS_URL"] = server.url
        worker_env["RUNNEL_REDIS_PASSWORD_FILE"] = str(secret)
        args = [
            re.sub(r"\$\((\w+)\)", lambda m: worker_env[m[1]], arg) for arg in container()["args"]
        ]
        args[args.index("--http") + 1] = f"127.0.0.1:{port}"
        process = subprocess.Popen(
            [runnel, *entrypoint[1:], *args],
            cwd=workdir,
            env=worker_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert _status_becomes(port, "/healthz", 200, process)
            assert _status_becomes(port, "/readyz", 200, process)
            process.send_signal(signal.SIGTERM)
            grace = the("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            out, err = process.communicate(timeout=grace)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    for line in lines:
        json.loads(line)  # --log-format json: one object a line
    assert password not in out + err


def _status_becomes(port: int, path: str, status: int, process: subprocess.Popen[str]) -> bool:
    """Poll ``path`` until it answers ``status``; False if the worker exits or 60 s pass."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the worker exited with {process.returncode}: {err}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == status:
                return True
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    return False
