"""The Kubernetes manifests of deploy/kubernetes: valid against the Kubernetes
schemas (kubernetes-validate ships them; offline), and tied to the code they run:
the grace period to the shutdown setting, the probes to the probe port, every
variable to a setting, every command to a real one, the secrets to a Secret."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from agnt_jobs.cli import cli
from agnt_jobs.scheduler.probes import READY_TIMEOUT_SECONDS
from agnt_jobs.settings import Settings
from agnt_jobs.settings.names import variable as env_name

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes still commonly run, and every release since.
VERSIONS = [
    path.name.removeprefix("v").removesuffix("-local")
    for path in (
        Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    ).glob("v*-local")
]
VERSIONS = sorted(
    (v for v in VERSIONS if tuple(map(int, v.split("."))) >= (1, 29, 0)),
    key=lambda v: tuple(map(int, v.split("."))),
)
# Custom resources: no schema ships with Kubernetes; checked by their ties below.
CUSTOM = {"ServiceMonitor"}
SECRETS = {"AGNT_DATABASE_URL", "INTERNAL_API_TOKEN"}


def _documents() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name
    ]
    return found


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] in ("Deployment", "Job")]


def _containers() -> list[dict[str, Any]]:
    return [c for w in _workloads() for c in _pod(w)["containers"]]


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """The literal variables a container gets, its ConfigMaps' included."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = _one("ConfigMap", source["configMapRef"]["name"])
        values.update(config_map["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
    return values


def test_there_are_the_manifests_a_deployment_needs() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in _documents())
    assert kinds == [
        ("ConfigMap", "agnt-jobs"),
        ("Deployment", "agnt-jobs-admin"),
        ("Deployment", "agnt-jobs-worker"),
        ("Job", "agnt-jobs-migrate"),
        ("PodDisruptionBudget", "agnt-jobs-worker"),
        ("Service", "agnt-jobs-admin"),
        ("ServiceMonitor", "agnt-jobs"),
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    for document in _documents():
        if document["kind"] not in CUSTOM:
            kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_is_strict_enough_to_catch_a_misspelt_field() -> None:
    worker = copy.deepcopy(_one("Deployment", "agnt-jobs-worker"))
    _pod(worker)["terminationGracePeriod"] = 90
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, VERSIONS[-1], strict=True)


def test_the_workers_grace_period_outlasts_their_shutdown_timeout() -> None:
    """SIGKILL must not come before running jobs had their graceful timeout, then
    a moment to stop at their checkpoint, be requeued, and the worker unregister."""
    worker = _one("Deployment", "agnt-jobs-worker")
    (container,) = _pod(worker)["containers"]
    timeout = float(
        _environment(container).get(
            "AGNT_SHUTDOWN_GRACEFUL_TIMEOUT",
            Settings.model_fields["shutdown_graceful_timeout"].default,
        )
    )
    assert _pod(worker)["terminationGracePeriodSeconds"] >= timeout + 20


def test_the_probes_ask_the_port_and_paths_the_processes_serve() -> None:
    worker = _one("Deployment", "agnt-jobs-worker")
    (container,) = _pod(worker)["containers"]
    (port,) = container["ports"]
    assert int(_environment(container)["AGNT_PROBE_PORT"]) == port["containerPort"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "probes"}
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "probes"}
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "probes",
    }
    admin = _one("Deployment", "agnt-jobs-admin")
    (container,) = _pod(admin)["containers"]
    (port,) = container["ports"]
    command = container["command"]
    assert int(command[command.index("--port") + 1]) == port["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in [
        c[kind]
        for c in _containers()
        for kind in ("livenessProbe", "readinessProbe")
        if kind in c
    ]:
        # The readiness check gives up after READY_TIMEOUT_SECONDS; the kubelet
        # must wait for that answer rather than count its own timeout.
        assert probe["timeoutSeconds"] > READY_TIMEOUT_SECONDS


def test_every_variable_is_a_setting_and_the_secrets_come_from_a_secret() -> None:
    settings = {env_name(name) for name in Settings.model_fields}
    for container in _containers():
        names = set(_environment(container)) | {v["name"] for v in container["env"]}
        assert names <= settings, names - settings
        assert "AGNT_DATABASE_URL" in names
        for variable in container["env"]:
            if variable["name"] in SECRETS:
                assert set(variable) == {"name", "valueFrom"}
                assert variable["valueFrom"]["secretKeyRef"]["name"] == "agnt-jobs"
        assert not SECRETS & set(_one("ConfigMap", "agnt-jobs")["data"])


def test_every_command_is_one_the_image_has() -> None:
    runner = CliRunner()
    for container in _containers():
        command = container.get("command")
        if command is None:
            continue  # the image's CMD: procrastinate worker
        assert command[0] == "agnt-jobs"
        words = [w for w in command[1:] if not w.startswith("-")]
        subcommand = words[: 2 if words[0] == "db" else 1]
        result = runner.invoke(cli, [*subcommand, "--help"])
        assert result.exit_code == 0, result.output


def test_selectors_pick_the_pods_they_mean() -> None:
    for workload in _documents():
        if workload["kind"] == "Deployment":
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    worker_labels = _one("Deployment", "agnt-jobs-worker")["spec"]["template"][
        "metadata"
    ]["labels"]
    admin_labels = _one("Deployment", "agnt-jobs-admin")["spec"]["template"][
        "metadata"
    ]["labels"]
    budget = _one("PodDisruptionBudget", "agnt-jobs-worker")["spec"]
    assert budget["selector"]["matchLabels"].items() <= worker_labels.items()
    assert (
        budget["minAvailable"]
        < _one("Deployment", "agnt-jobs-worker")["spec"]["replicas"]
    )
    service = _one("Service", "agnt-jobs-admin")["spec"]
    assert service["selector"].items() <= admin_labels.items()
    assert not service["selector"].items() <= worker_labels.items()


def test_the_service_monitor_scrapes_the_admins_metrics_with_the_token() -> None:
    monitor = _one("ServiceMonitor", "agnt-jobs")
    service = _one("Service", "agnt-jobs-admin")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    admin = _one("Deployment", "agnt-jobs-admin")
    (container,) = _pod(admin)["containers"]
    (token,) = [v for v in container["env"] if v["name"] == "INTERNAL_API_TOKEN"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": token["valueFrom"]["secretKeyRef"],
    }


def test_every_pod_runs_as_the_images_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = [
        line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER")
    ]
    uid, gid = (int(part) for part in user.split(":"))
    for workload in _workloads():
        security = _pod(workload)["securityContext"]
        assert security["runAsNonRoot"] is True
        assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid)
