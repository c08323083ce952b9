"""Launching a training command and stopping it: a local process tree, and a job on a real local Ray cluster."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from training.backends.launchers import (
    LocalProcess,
    RayJob,
    process_is_training,
    ray_entrypoint,
    ray_job_exists,
)

PRINTS_THEN_EXITS = (
    "import sys\nfor i in range(3): print('line', i, flush=True)\nprint('oops', file=sys.stderr)\nsys.exit(3)"
)
# A parent that starts a child in a session of its own (as Ray's local cluster or vLLM's engine do), tells its
# pid, and waits; both ignore nothing, so SIGTERM ends them.
SPAWNS_A_DETACHED_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "print('child', child.pid, flush=True)\n"
    "time.sleep(600)\n"
)
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def read_all(process, *, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while process.exit_code() is None:
        assert time.monotonic() < deadline, f"no end after {timeout} s; read {lines}"
        lines += process.read_lines(timeout=0.2)
    return lines


def wait_for_line(process, prefix: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in process.read_lines(timeout=0.2):
            if line.startswith(prefix):
                return line
    raise AssertionError(f"no line starting with {prefix!r}")


def test_a_local_process_gives_its_lines_stderr_included_and_its_exit_code(tmp_path):
    process = LocalProcess.start(
        [sys.executable, "-c", PRINTS_THEN_EXITS], cwd=tmp_path, env={"PATH": "/usr/bin"}
    )

    lines = read_all(process)

    assert lines == ["line 0", "line 1", "line 2", "oops"]
    assert process.exit_code() == 3


def test_stopping_a_local_process_stops_its_whole_tree_even_a_child_in_another_session(tmp_path):
    process = LocalProcess.start([sys.executable, "-c", SPAWNS_A_DETACHED_CHILD], cwd=tmp_path, env={})
    child_pid = int(wait_for_line(process, "child").split()[1])
    assert psutil.pid_exists(child_pid)

    started = time.monotonic()
    process.stop(grace_seconds=10)

    assert time.monotonic() - started < 10  # SIGTERM was enough
    assert not psutil.pid_exists(process.pid)
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    process = LocalProcess.start([sys.executable, "-c", IGNORES_SIGTERM], cwd=tmp_path, env={})
    wait_for_line(process, "ready")

    started = time.monotonic()
    process.stop(grace_seconds=1)

    assert 1 <= time.monotonic() - started < 8
    assert process.exit_code() is not None or not psutil.pid_exists(process.pid)


def test_a_leftover_process_is_recognised_by_its_run_folder_only(tmp_path):
    folder = tmp_path / "run-1"
    folder.mkdir()
    process = LocalProcess.start([sys.executable, "-c", "import time; time.sleep(60)"], cwd=folder, env={})
    try:
        assert process_is_training(process.pid, folder)
        assert not process_is_training(process.pid, tmp_path / "run-2")
    finally:
        process.stop(grace_seconds=5)
    assert not process_is_training(process.pid, folder)


def test_the_ray_entrypoint_runs_in_the_folder_with_the_command_quoted():
    entrypoint = ray_entrypoint(
        ["python", "-m", "verl.trainer.main_ppo", "data.train_files=['/a b/train.parquet']"],
        cwd=Path("/runs/run 1/data"),
    )

    quote = "'\"'\"'"  # how the shell writes a quote inside single quotes
    assert entrypoint == (
        "cd '/runs/run 1/data' && exec python -m verl.trainer.main_ppo "
        f"'data.train_files=[{quote}/a b/train.parquet{quote}]'"
    )


# --- A real Ray cluster on this machine ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """A one-CPU Ray head with its dashboard (the job API), started for these tests and stopped after."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("the ray CLI is not installed (it comes with requirements-verl.txt)")
    if any(process.info["name"] == "raylet" for process in psutil.process_iter(["name"])):
        # "ray stop" stops every Ray process of the machine: never someone else's cluster.
        pytest.skip("a Ray cluster already runs on this machine; these tests start and stop their own")
    dashboard_port = free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    started = subprocess.run(
        [
            ray, "start", "--head", "--num-cpus", "1", "--include-dashboard", "true",
            "--dashboard-port", str(dashboard_port), "--port", str(free_port()),
            "--disable-usage-stats", "--temp-dir", str(temp_dir),
        ],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_a_ray_job_runs_in_its_folder_and_reports_lines_and_failure(ray_address, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import os, sys\nprint('cwd', os.getcwd(), flush=True)\nprint('TWIN_METRICS {}', flush=True)\nsys.exit(2)\n"
    )
    submission_id = f"twin-test-{time.monotonic_ns()}"

    job = RayJob.submit(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"A": "1"},
        address=ray_address,
        submission_id=submission_id,
    )
    lines = read_all(job, timeout=120)

    assert f"cwd {tmp_path}" in lines and "TWIN_METRICS {}" in lines
    assert job.exit_code() == 1 and "FAILED" in job.status_message()
    assert ray_job_exists(address=ray_address, submission_id=submission_id)
    assert not ray_job_exists(address=ray_address, submission_id="twin-never-submitted")


def test_stopping_a_ray_job_ends_it(ray_address, tmp_path):
    submission_id = f"twin-test-{time.monotonic_ns()}"
    job = RayJob.submit(
        [sys.executable, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(600)"],
        cwd=tmp_path, env={}, address=ray_address, submission_id=submission_id,
    )  # fmt: skip
    wait_for_line(job, "ready", timeout=120)

    job.stop(grace_seconds=5)

    assert "STOPPED" in job.status_message()
    attached = RayJob.attach(address=ray_address, submission_id=submission_id)
    assert "ready" in read_all(attached, timeout=60)  # a restarted worker reads the job's log from the start
