"""The deployment files: docker-compose.yml validated by docker-compose itself (Debian's 1.29; there is no Docker
engine on these machines, ``config`` needs none), with the services and settings production relies on."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
SECRETS = {"DJANGO_SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "secret"}


def compose_config(*arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS}
    env.update(environment if environment is not None else SECRETS)
    return subprocess.run(
        [
            COMPOSE,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            *arguments,
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (Debian: apt-get install docker-compose)"
)
def test_the_compose_file_is_valid_and_holds_the_production_services():
    result = compose_config("--profile", "gpu")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "gpu-worker", "monitor"}
    assert "healthcheck" in services["postgres"] and services["postgres"]["volumes"]
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "gunicorn" in " ".join(
        services["web"]["command"]
        if isinstance(services["web"]["command"], list)
        else [services["web"]["command"]]
    )

    gpu = services["gpu-worker"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "Dockerfile.gpu"
    command = gpu["command"] if isinstance(gpu["command"], str) else " ".join(gpu["command"])
    assert "-Q gpu" in command and "--pool solo" in command and "--prefetch-multiplier 1" in command
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "monitor_jobs" in str(services["monitor"]["command"])
    for name in ("web", "worker", "gpu-worker", "monitor"):
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


@pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (Debian: apt-get install docker-compose)"
)
def test_secrets_are_required():
    for name in SECRETS:
        missing = compose_config(environment={key: value for key, value in SECRETS.items() if key != name})
        assert missing.returncode != 0 and f"set {name}" in missing.stderr + missing.stdout


def test_the_gpu_image_installs_the_gpu_stack():
    dockerfile = (ROOT / "Dockerfile.gpu").read_text()
    assert "FROM nvidia/cuda:" in dockerfile
    assert "-r requirements-gpu.txt" in dockerfile and "flash-attn" in dockerfile
    assert "USER twin" in dockerfile
