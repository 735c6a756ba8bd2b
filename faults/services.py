"""The processes the fault suite starts, kills and restarts: Celery workers, a web server (Label
Studio's webhook target), PostgreSQL, Redis and Label Studio. Everything runs on loopback with the
ports of .run/env.sh; PostgreSQL and Label Studio are the ones scripts/services.sh and
scripts/labelstudio.sh manage, Redis and the workers are the suite's own."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / ".run" / "faults"
PY = sys.executable


def wait_for(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - a service coming back answers with errors first
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def sh(*args: str, env: dict | None = None, timeout: float = 180) -> None:
    subprocess.run(list(args), cwd=REPO, env={**os.environ, **(env or {})}, check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Worker:
    """One Celery worker (prefork, one child), as in production but for its small time limits."""

    def __init__(self, name: str, env: dict):
        self.name, self.env = name, env
        self.log = RUN / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        RUN.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        self.proc = subprocess.Popen(
            [PY, "-m", "celery", "-A", "evalgap", "worker", "--concurrency", "1", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"{self.name}@%h", "--loglevel", "INFO",
             "--logfile", str(self.log)],
            cwd=REPO, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: " ready." in self.log.read_text(errors="replace") or self.proc.poll() is not None, 120,
                 f"worker {self.name} to start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited at start; see {self.log}")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def kill_child(self) -> bool:
        """kill -9 the pool process running the task; the parent starts a new one."""
        kids = self.children()
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
        return bool(kids)

    def kill_parent(self) -> None:
        """kill -9 the worker's main process only; its child is orphaned, as after an OOM kill of it."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_all(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        # Orphans re-parented away from the group (none expected) are found by their command line.
        out = subprocess.run(["pgrep", "-f", f"-n {self.name}@"], capture_output=True, text=True).stdout.split()
        for pid in map(int, out):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """A warm shutdown (SIGTERM): the task under way finishes, nothing queued is lost."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.kill_all()


class WebServer:
    """`manage.py runserver` on loopback: where Label Studio sends its webhooks."""

    def __init__(self, port: int, env: dict):
        self.port, self.env = port, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WebServer":
        log = open(RUN / "web.log", "ab")
        self.proc = subprocess.Popen([PY, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload",
                                      "--skip-checks"], cwd=REPO, env={**os.environ, **self.env}, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz/", timeout=2).status == 200,
                 120, "the web server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def postgres_crash_and_restart(pause: float = 0.0) -> None:
    """`pg_ctl -m immediate` (no checkpoint: recovery replays the WAL), then a durable start."""
    sh("scripts/services.sh", "pgcrash")
    time.sleep(pause)
    sh("scripts/services.sh", "pg", env={"PG_DURABLE": "1"})


def postgres_durable() -> None:
    """(Re)start the cluster with fsync, synchronous commit and full-page writes on."""
    sh("scripts/services.sh", "pgstop")
    sh("scripts/services.sh", "pg", env={"PG_DURABLE": "1"})


def redis_env(port: int) -> dict:
    return {"REDIS_PORT": str(port), "REDIS_DIR": str(RUN / "redis"), "REDIS_DURABLE": "1"}


def redis_start(port: int) -> None:
    sh("scripts/services.sh", "redis", env=redis_env(port))


def redis_crash_and_restart(port: int, pause: float = 0.0) -> None:
    sh("scripts/services.sh", "rediscrash", env=redis_env(port))
    time.sleep(pause)
    sh("scripts/services.sh", "redis", env=redis_env(port))


def redis_stop(port: int) -> None:
    sh("scripts/services.sh", "redisstop", env=redis_env(port))


def labelstudio_restart() -> None:
    sh("scripts/labelstudio.sh", "stop")
    sh("scripts/labelstudio.sh", "start", timeout=600)


def labelstudio_stop() -> None:
    sh("scripts/labelstudio.sh", "stop")


def labelstudio_start() -> None:
    sh("scripts/labelstudio.sh", "start", timeout=600)
