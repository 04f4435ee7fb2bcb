"""The processes a benchmark measures: the app's workers (`manage.py serve`), the yardstick, and their /proc figures.

Every server starts inside a `with` block and is stopped when the block ends,
however it ends, so a failing scenario leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMITS_OFF = {
    name: "off"
    for name in ("MESSAGE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "REGISTER_RATE_LIMIT", "PASSWORD_RESET_RATE_LIMIT")
}


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path | None = None) -> None:
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not start\n{tail}".rstrip())


def raise_open_files_limit() -> int:
    """Lift this process's soft limit on open files to the hard limit: every socket is a file. Returns the limit.

    Runs in the harness, the load generator and (as preexec_fn) each server.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit is still capped by the kernel (fs.nr_open); a million is plenty here.
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
    return wanted


def app_environment(var_dir: Path, *, message_rate_limit: str = "off") -> dict[str, str]:
    """Production settings on the services the environment names, every rate limit off.

    `message_rate_limit` (a MESSAGE_RATE_LIMIT such as "1000000/10") turns the
    message limit on at a rate the load never reaches: the sends then pay for
    the check as in production, without being refused.
    Made once per run: every worker of the run shares the secrets, so a token
    issued by one worker is valid on the next.
    """
    return {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ACCESS_TOKEN_SECRET": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "VAR_DIR": str(var_dir),
        "LOG_LEVEL": "WARNING",
        **RATE_LIMITS_OFF,
        "MESSAGE_RATE_LIMIT": message_rate_limit,
    }


def migrate(env: dict[str, str], *, root: Path = ROOT, python: str = sys.executable) -> None:
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def app_worker(env: dict[str, str], *, root: Path = ROOT, python: str = sys.executable) -> Iterator[Server]:
    """One worker serving the app, started as everywhere else (`manage.py serve`); its output goes to
    worker-<port>.log in VAR_DIR. `root` and `python` name another checkout and interpreter (bench.compare)."""
    port = free_port()
    log = Path(env["VAR_DIR"]) / f"worker-{port}.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [python, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_open_files_limit,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url + "/healthz", process, log)
        yield Server(process, url)
    finally:
        stop(process)


@contextmanager
def yardstick() -> Iterator[Server]:
    """The raw ASGI relay (bench/yardstick.py) on granian with uvloop."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "bench.yardstick:app",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process)
        yield Server(process, url)
    finally:
        stop(process)


def resident_kib(pid: int) -> int:
    """The process's resident memory (VmRSS), in KiB."""
    return psutil.Process(pid).memory_info().rss // 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the process and all its descendants, those that ended included (granian serves
    from a child process). psutil.NoSuchProcess if the process itself is gone."""
    root = psutil.Process(pid)
    used = _with_ended_children(root.cpu_times())
    for child in root.children(recursive=True):
        # One that ended meanwhile is left out: its time reaches its parent's once waited for.
        with contextlib.suppress(psutil.NoSuchProcess):
            used += _with_ended_children(child.cpu_times())
    return used


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU time the process's main thread has used so far: an app worker's event loop (its other threads are
    the database thread, the request threads and SQLite's checkpoints). Linux numbers a process's main thread
    with the process's id; psutil.NoSuchProcess if the process is gone."""
    for thread in psutil.Process(pid).threads():
        if thread.id == pid:
            return thread.user_time + thread.system_time
    raise LookupError(f"no thread of process {pid} has its id: its main thread cannot be told apart here")


def _with_ended_children(times) -> float:
    return times.user + times.system + times.children_user + times.children_system


def machine_busy_seconds() -> float:
    """CPU time all cores of the machine have spent busy (not idle, not waiting for I/O) since boot."""
    times = psutil.cpu_times()
    # Guest time is counted in user time already.
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def cpu_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second the process used over the next `seconds`."""
    started, used = time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - used) / (time.monotonic() - started)
