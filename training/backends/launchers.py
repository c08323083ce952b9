"""Running a training command and following it: a child process of the worker, or a job on a Ray cluster.

Both give the worker the same handle (``TrainingProcess``): the output lines as they come, the exit status when
it ends, and ``stop`` for a cancel. The worker's loop (``training.services.run_execution``) reads lines in short
waits so that it notices a cancel within seconds even when the command prints nothing.

- ``LocalProcess``: the command runs in its own session (process group) so that a cancel reaches everything it
  started: the group gets SIGTERM, then, after a grace period, every process of the tree still alive gets
  SIGKILL. Descendants that started sessions of their own (Ray's local cluster, vLLM's engine) are found by
  walking the process tree before the first signal.
- ``RayJob``: the command is submitted with Ray's job API (what ``ray job submit`` calls) to the cluster's
  dashboard address, its logs are tailed over the API's websocket, and a cancel is ``stop_job`` (Ray sends
  SIGTERM to the job's entrypoint and kills it after a grace period of its own).

No Django here: addresses and paths come from the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import psutil

# One read of output lines returns at most this many, so a chatty command can't starve the cancel check.
MAX_LINES_PER_READ = 2000
_END = object()  # the reader thread's last item: the output is closed


class TrainingProcess(Protocol):
    """A started training command, however it runs."""

    external_id: str

    def read_lines(self, timeout: float) -> list[str]:
        """Output lines that arrived, waiting up to ``timeout`` seconds for the first; [] when none came."""
        ...

    def exit_code(self) -> int | None:
        """None while it runs (or while its output is still being read); 0 on success, else non-zero."""
        ...

    def stop(self, grace_seconds: float) -> None:
        """Stops it and everything it started; returns once they are gone (or killed)."""
        ...


class _LineReader:
    """Reads a byte stream into lines on a thread, so the worker can wait for output with a timeout."""

    def __init__(self) -> None:
        self._lines: queue.Queue[object] = queue.Queue()
        self.closed = False

    def feed_stream(self, stream) -> None:  # noqa: ANN001 a binary file object
        try:
            for raw in iter(stream.readline, b""):
                self._lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        finally:
            self._lines.put(_END)

    def feed_text(self, text: str) -> None:
        for line in text.splitlines():
            self._lines.put(line)

    def end(self) -> None:
        self._lines.put(_END)

    def read(self, timeout: float) -> list[str]:
        lines: list[str] = []
        try:
            item = self._lines.get(timeout=timeout) if not self.closed else self._lines.get_nowait()
        except queue.Empty:
            return lines
        while True:
            if item is _END:
                self.closed = True
                return lines
            lines.append(item)  # type: ignore[arg-type]
            if len(lines) >= MAX_LINES_PER_READ:
                return lines
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                return lines


class LocalProcess:
    """The command as a child process of the worker, in a session of its own."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self.external_id = f"pid:{process.pid}"
        self._reader = _LineReader()
        threading.Thread(
            target=self._reader.feed_stream,
            args=(process.stdout,),
            name=f"training-output-{process.pid}",
            daemon=True,
        ).start()

    @classmethod
    def start(cls, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> LocalProcess:
        process = subprocess.Popen(  # noqa: S603 the command is built from the run's validated fields, no shell
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream: tracebacks land in the log in the order they happened
            start_new_session=True,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def read_lines(self, timeout: float) -> list[str]:
        return self._reader.read(timeout)

    def exit_code(self) -> int | None:
        if not self._reader.closed:
            return None  # the last lines (often the error) are read before the end is reported
        return self._process.poll()

    def stop(self, grace_seconds: float) -> None:
        process_tree_stop(self._process.pid, grace_seconds=grace_seconds)
        self._process.wait()


def process_tree_stop(pid: int, *, grace_seconds: float) -> None:
    """SIGTERM to the process, its process group and all its descendants; SIGKILL to those left after the grace.

    The tree is listed before any signal, since a child whose parent dies is re-parented and can no longer be
    found from it.
    """
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # the session's group: the command and whatever stayed in its group
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace_seconds)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def process_is_training(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is alive and works for the run in ``folder`` (its working directory or its command line
    names the folder), so that a recycled pid is never stopped by mistake."""
    try:
        process = psutil.Process(pid)
        mentioned = str(folder) in " ".join(process.cmdline())
        return mentioned or Path(process.cwd()).is_relative_to(folder)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def ray_job_exists(*, address: str, submission_id: str) -> bool:
    from ray.job_submission import JobSubmissionClient

    try:
        JobSubmissionClient(address).get_job_info(submission_id)
    except RuntimeError:  # the SDK's answer to a 404
        return False
    return True


class RayJob:
    """The command as a job on a Ray cluster, submitted through the dashboard's job API."""

    def __init__(self, client, submission_id: str) -> None:  # noqa: ANN001 ray's JobSubmissionClient
        self._client = client
        self.external_id = f"ray:{submission_id}"
        self.submission_id = submission_id
        self._reader = _LineReader()
        threading.Thread(target=self._follow, name=f"ray-logs-{submission_id}", daemon=True).start()

    @classmethod
    def submit(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        address: str,
        submission_id: str,
        entrypoint_num_gpus: float | None = None,
    ) -> RayJob:
        """Submits ``cd <cwd> && <argv>`` (the entrypoint runs on the head node; verl spreads its workers over
        the cluster itself). ``env`` is the job's runtime environment; ``cwd`` must exist on the cluster's
        nodes, which is why runs live on a shared filesystem under the Ray launcher."""
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(address)
        client.submit_job(
            entrypoint=ray_entrypoint(argv, cwd=cwd),
            submission_id=submission_id,
            runtime_env={"env_vars": dict(env)},
            entrypoint_num_gpus=entrypoint_num_gpus,
        )
        return cls(client, submission_id)

    @classmethod
    def attach(cls, *, address: str, submission_id: str) -> RayJob:
        """Follows a job submitted earlier (a worker restarted while its run went on)."""
        from ray.job_submission import JobSubmissionClient

        return cls(JobSubmissionClient(address), submission_id)

    def _follow(self) -> None:
        async def tail() -> None:
            pending = ""
            async for chunk in self._client.tail_job_logs(self.submission_id):
                pending += chunk
                *complete, pending = pending.split("\n")
                self._reader.feed_text("\n".join(complete))
            if pending:
                self._reader.feed_text(pending)

        try:
            asyncio.run(tail())
        except Exception as exc:  # the dashboard went away: the status poll decides how the job ended
            self._reader.feed_text(f"(following the Ray job's log stopped: {type(exc).__name__}: {exc})")
        finally:
            self._reader.end()

    def read_lines(self, timeout: float) -> list[str]:
        return self._reader.read(timeout)

    def exit_code(self) -> int | None:
        from ray.job_submission import JobStatus

        status = self._client.get_job_status(self.submission_id)
        if not status.is_terminal() or not self._reader.closed:
            return None
        return 0 if status == JobStatus.SUCCEEDED else 1

    def status_message(self) -> str:
        info = self._client.get_job_info(self.submission_id)
        return f"Ray job {self.submission_id}: {info.status} {info.message or ''}".strip()

    def stop(self, grace_seconds: float) -> None:
        import time

        self._client.stop_job(self.submission_id)
        deadline = time.monotonic() + grace_seconds + 30  # Ray's own grace before its SIGKILL, and some slack
        while (
            time.monotonic() < deadline and not self._client.get_job_status(self.submission_id).is_terminal()
        ):
            time.sleep(1)


def ray_entrypoint(argv: Sequence[str], *, cwd: Path) -> str:
    """The shell line Ray runs: the working directory, then the command (exec: Ray's SIGTERM reaches it)."""
    return f"cd {shlex.quote(str(cwd))} && exec {shlex.join(argv)}"
