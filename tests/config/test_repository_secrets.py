"""No secrets in the repository: no environment file, private key or cloud/API token among the tracked files,
and no secret with a default value in the production settings or the compose file."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The shapes real credentials have (a test's stand-in, like "sk-secret-test-key", is too short to match).
CREDENTIALS = {
    "a private key": re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "an AWS access key": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(
        rb"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{60,}"
    ),
    "a Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "an OpenAI key": re.compile(rb"\bsk-(?:proj-)?[A-Za-z0-9_-]{40,}"),
    "a Hugging Face token": re.compile(rb"\bhf_[A-Za-z0-9]{34,}"),
    "a database URL with a password": re.compile(rb"postgres(?:ql)?://[^:/@\s]+:[^@\s${}]{8,}@"),
}


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files can't be listed")
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def test_no_environment_file_is_tracked():
    names = [path.name for path in _tracked_files()]
    assert [name for name in names if name == ".env" or name.startswith(".env.")] == []


def test_no_credential_is_tracked():
    found = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        content = path.read_bytes()
        found += [
            f"{path.relative_to(ROOT)}: {what}"
            for what, shape in CREDENTIALS.items()
            if shape.search(content)
        ]
    assert found == []


def test_the_scan_would_see_one():
    """The shapes match real-looking credentials (so the scan above can fail)."""
    samples = [
        b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----",
        b"AKIA" + b"Z7QW2R5T8Y1U3I6O",
        b"ghp_" + b"a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        b"sk-proj-" + b"x" * 48,
        b"postgres://twin:" + b"hunter2hunter2@db:5432/twin",
    ]
    for sample in samples:
        assert any(shape.search(sample) for shape in CREDENTIALS.values()), sample


def test_production_secrets_have_no_default():
    production = (ROOT / "config" / "settings" / "production.py").read_text()
    assert 'SECRET_KEY = required("DJANGO_SECRET_KEY")' in production
    compose = (ROOT / "docker-compose.yml").read_text()
    # ${NAME:?message}: compose refuses to start without it, rather than using a default.
    for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD"):
        references = re.findall(rf"\$\{{{name}([^}}]*)\}}", compose)
        assert references and all(reference.startswith(":?") for reference in references), (name, references)
