"""deploy/: the Kubernetes manifests are valid against the Kubernetes schemas (offline:
kubernetes-validate ships them), fit together (selectors, the HPA's target, the PDBs, the
Secrets they name), pass the "restricted" Pod Security profile, probe readiness and liveness on
the routes that mean them, and every command line in them, the Dockerfile and the systemd units
is one the server accepts. The HPA's arithmetic against live members is in test_fleet_heal.py."""

from __future__ import annotations

import argparse
import configparser
import json
import re
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipeline.server.cli import SECRET_ENV, STORE_ENV, TOKEN_ENV, add_serve_arguments, config_from_args

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = "1.30.0"


def docs() -> list[dict]:
    out = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def by_kind(kind: str) -> list[dict]:
    return [d for d in docs() if d["kind"] == kind]


# what `kubectl create secret generic pipeline-ocr` puts in the pods' environment (docs/fleet.md)
SECRET_KEYS = {TOKEN_ENV: "a-token", SECRET_ENV: "a-long-random-secret",
               STORE_ENV: "postgresql://member:pw@db.example.internal:5432/pipeline"}


def serve_config(argv: list[str], monkeypatch):
    """Parse a serve command line as ``python -m pipeline serve`` would, with the Secret's env."""
    for key, value in SECRET_KEYS.items():
        monkeypatch.setenv(key, value)
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    return config_from_args(p.parse_args(argv))


@pytest.mark.parametrize("doc", docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest():
    broken = json.loads(json.dumps(by_kind("Deployment")[0]))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_pieces_fit_together(monkeypatch):
    deployments = {d["metadata"]["name"]: d for d in by_kind("Deployment")}
    assert set(deployments) == {"pipeline-ocr-api", "pipeline-ocr-worker"}
    service = by_kind("Service")[0]
    api_labels = deployments["pipeline-ocr-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()        # the Service reaches the API pods
    worker_labels = deployments["pipeline-ocr-worker"]["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items()  # ... and not the workers
    hpa = by_kind("HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "pipeline-ocr-worker"
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "External" and metric["external"]["metric"]["name"] == "pipeline_jobs_queued"
    assert metric["external"]["target"]["type"] == "AverageValue"   # desired = ceil(queue / target)
    entry = dockerfile_command()
    roles = {}
    for name, d in deployments.items():
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"][0]["secretRef"]["name"] == "pipeline-ocr"
        cfg = serve_config(entry + container["args"], monkeypatch)
        assert cfg.store_url and cfg.store_url.startswith("postgresql://") and cfg.host == "0.0.0.0"
        assert not cfg.migrate                    # the serving pods never change the schema
        roles[name] = cfg.role
    assert roles == {"pipeline-ocr-api": "api", "pipeline-ocr-worker": "worker"}


def test_no_placeholder_secret_is_shipped_where_kubectl_apply_would_overwrite_a_real_one():
    assert by_kind("Secret") == []
    for d in docs():
        assert "stringData" not in d and "data" not in d


def test_probes_mean_ready_and_live_apart():
    for d in by_kind("Deployment"):
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"   # a database outage: out of rotation
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"     # a dead loop: restarted


def test_the_api_drains_before_it_stops_and_the_migration_job_runs_migrate_only(monkeypatch):
    api = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "pipeline-ocr-api")["spec"]["template"]["spec"]
    pre = api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "python" and api["terminationGracePeriodSeconds"] > float(re.search(r"sleep\((\d+)\)", pre[-1]).group(1))
    (job,) = by_kind("Job")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["envFrom"][0]["secretRef"]["name"] == "pipeline-ocr-migrate"
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    assert p.parse_args(dockerfile_command() + c["args"]).migrate_only


def test_every_workload_has_a_disruption_budget():
    budgets = by_kind("PodDisruptionBudget")
    for d in by_kind("Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, d["metadata"]["name"]
        spec = matching[0]["spec"]
        assert spec.get("minAvailable", 0) < d["spec"]["replicas"] or spec.get("maxUnavailable", 0) >= 1


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}


def restricted_violations(pod: dict) -> list[str]:
    """What the "restricted" Pod Security Standard (v1.30) refuses in ``pod`` (a pod spec)."""
    bad = []
    psc = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad.append(host)
    for v in pod.get("volumes", []):
        if not set(v) - {"name"} <= ALLOWED_VOLUMES:
            bad.append(f"volume {v['name']}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities must drop ALL")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            bad.append(f"{name}: hostPort")
    return bad


def pod_specs() -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind("Deployment") + by_kind("Job")}


@pytest.mark.parametrize("name", sorted(pod_specs()))
def test_every_pod_passes_the_restricted_pod_security_profile(name):
    pod = pod_specs()[name]
    assert restricted_violations(pod) == []
    for c in pod["containers"]:   # beyond the profile: nothing writes to the image
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_profile_check_refuses_what_the_restricted_profile_refuses():
    pod = json.loads(json.dumps(pod_specs()["pipeline-ocr-worker"]))
    pod["containers"][0]["securityContext"] = {"privileged": True}
    del pod["securityContext"]["seccompProfile"]
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = restricted_violations(pod)
    assert {"worker: privileged", "worker: allowPrivilegeEscalation must be false",
            "worker: capabilities must drop ALL", "worker: seccompProfile", "volume host"} <= set(found)


def dockerfile_command() -> list[str]:
    """The ENTRYPOINT's serve arguments (after ``python -m pipeline serve``)."""
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    assert entry[:4] == ["python", "-m", "pipeline", "serve"]
    return entry[4:]


def test_the_image_default_command_is_accepted(monkeypatch):
    text = (DEPLOY / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert serve_config(dockerfile_command() + cmd, monkeypatch).role == "all"
    assert re.search(r"^USER \d+", text, re.M)  # not root


@pytest.mark.parametrize("unit", ["pipeline-api.service", "pipeline-worker@.service"])
def test_systemd_units_run_a_command_the_server_accepts(unit, monkeypatch):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((DEPLOY / "systemd" / unit).read_text())
    service = parser["Service"]
    assert service["EnvironmentFile"] == "/etc/pipeline/pipeline.env" and service["User"] == "pipeline"
    argv = shlex.split(service["ExecStart"].replace("%H", "host").replace("%i", "8101"))
    assert argv[1:4] == ["-m", "pipeline", "serve"]
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "pipeline.env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    assert set(env) == {TOKEN_ENV, SECRET_ENV, STORE_ENV}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    cfg = config_from_args(p.parse_args(argv[4:]))
    assert cfg.store_url == env[STORE_ENV] and cfg.role in ("api", "worker")
    assert cfg.port == (8101 if cfg.role == "worker" else 8000) and cfg.host == "0.0.0.0"   # fixed, documented
    assert cfg.migrate == (cfg.role == "api")
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    # found on a tour: systemctl stop's default SIGTERM to the whole unit killed a worker's OCR engine
    # processes with the page in hand (the job failed WORKER_TIMEOUT); the drain needs the main one alone
    assert service["KillMode"] == "mixed"
