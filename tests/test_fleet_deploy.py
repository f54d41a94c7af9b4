"""deploy/: the Kubernetes manifests are valid against the Kubernetes schemas (offline:
kubernetes-validate ships them), fit together (selectors, the HPA's target, the Secret's keys),
and every command line in them, the Dockerfile and the systemd units is one the server accepts."""

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


def serve_config(argv: list[str], monkeypatch):
    """Parse a serve command line as ``python -m pipeline serve`` would, with the Secret's env."""
    secret = by_kind("Secret")[0]["stringData"]
    for key, value in secret.items():
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
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "pipeline_jobs_queued"
    assert set(by_kind("Secret")[0]["stringData"]) == {TOKEN_ENV, SECRET_ENV, STORE_ENV}
    entry = dockerfile_command()
    roles = {}
    for name, d in deployments.items():
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"][0]["secretRef"]["name"] == by_kind("Secret")[0]["metadata"]["name"]
        cfg = serve_config(entry + container["args"], monkeypatch)
        assert cfg.store_url and cfg.store_url.startswith("postgresql://") and cfg.host == "0.0.0.0"
        roles[name] = cfg.role
    assert roles == {"pipeline-ocr-api": "api", "pipeline-ocr-worker": "worker"}


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
    argv = shlex.split(service["ExecStart"].replace("%H", "host").replace("%i", "1"))
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
    assert parser["Install"]["WantedBy"] == "multi-user.target"
