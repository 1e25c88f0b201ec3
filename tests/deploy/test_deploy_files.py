"""The Dockerfile and deploy/ files, checked without a container runtime: the YAML parses,
every environment variable they set is a real trackd setting, every file they copy or
mount exists, and the pieces of the production shape are there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from trackd.cli.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"


def setting_variables() -> set[str]:
    """Every environment variable trackd reads (trackd/cli/settings.py)."""
    names = {"MONGODB_URI"}
    for name, field in Settings.model_fields.items():
        names.add(f"TRACKD_{name.upper()}")
        alias = field.validation_alias
        names.update(getattr(alias, "choices", []) if alias is not None else [])
    return names


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def trackd_services() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose()["services"].items()
            if service.get("build", {}).get("dockerfile") == "Dockerfile"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_dockerfile_sets_only_real_settings_and_copies_files_that_exist() -> None:
    instructions = dockerfile_instructions()
    variables = setting_variables()
    for word, rest in instructions:
        if word == "ENV":
            for pair in shlex.split(rest):
                name = pair.split("=", 1)[0]
                assert name.startswith(("PYTHON", "PIP_")) or name in variables, name
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert not source.startswith("--"), "COPY from another stage or with flags"
                assert (ROOT / source).exists(), source


def test_dockerfile_is_slim_non_root_serving_on_all_interfaces_with_a_readyz_check() -> None:
    instructions = dict(dockerfile_instructions())  # the last of each kind
    assert re.fullmatch(r"python:3\.\d+-slim", instructions["FROM"])
    assert instructions["USER"] not in ("root", "0")
    assert any(word == "ENV" and "TRACKD_HOST=0.0.0.0" in rest.split()
               for word, rest in dockerfile_instructions())
    assert "/readyz" in instructions["HEALTHCHECK"]
    assert instructions["CMD"] == '["trackd", "serve"]'


def test_compose_is_the_production_shape() -> None:
    services = compose()["services"]
    mongos = [name for name, s in services.items()
              if "--replSet" in (s.get("command") or [])]
    assert len(mongos) == 3
    init = services["mongo-init"]
    assert init["restart"] == "no"
    script = DEPLOY / "mongo-init.js"
    assert "./mongo-init.js:/mongo-init.js:ro" in init["volumes"]
    members = re.findall(r'host: "(mongo\d):27017"', script.read_text())
    assert sorted(members) == sorted(mongos)
    assert "rs.initiate" in script.read_text()

    trackds = trackd_services()
    assert len(trackds) == 2
    for service in trackds.values():
        uri = service["environment"]["MONGODB_URI"]
        assert "replicaSet=rs0" in uri
        assert all(f"{name}:27017" in uri for name in mongos)
        assert service["environment"]["TRACKD_HOST"] == "0.0.0.0"
        assert service["depends_on"]["mongo-init"]["condition"] == \
            "service_completed_successfully"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).exists()

    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["lb"]["volumes"]
    for name in trackds:
        assert f"server {name}:8080" in nginx
        assert f"server {name}:50051" in nginx
    assert "grpc_pass" in nginx

    prometheus = services["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    job = next(job for job in scrape if job["job_name"] == "trackd")
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == sorted(
        f"{name}:{trackds[name]['environment']['TRACKD_HTTP_PORT']}" for name in trackds)


def test_compose_sets_only_real_trackd_settings() -> None:
    variables = setting_variables()
    for name, service in trackd_services().items():
        unknown = sorted(set(service["environment"]) - variables)
        assert unknown == [], f"{name} sets variables trackd does not read: {unknown}"
        for value in service["environment"].values():
            assert isinstance(value, str), "compose wants strings: quote numbers"


def test_compose_mounts_only_files_that_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source}"
