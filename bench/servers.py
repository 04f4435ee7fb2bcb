"""The processes a benchmark measures: the app's workers (`manage.py serve`), the yardstick, and their /proc figures.

Every server starts inside a `with` block and is stopped when the block ends,
however it ends, so a failing scenario leaves no process behind.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMITS_OFF = {
    name: "off"
    for name in ("MESSAGE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "REGISTER_RATE_LIMIT", "PASSWORD_RESET_RATE_LIMIT")
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User plus system CPU time the process has used so far (with `reaped_children`, that of its children
    which have ended and been waited for too)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after its closing bracket do not.
    fields = stat[stat.rindex(")") + 2 :].split()
    times = fields[11:15] if reaped_children else fields[11:13]  # utime stime [cutime cstime]
    return sum(int(ticks) for ticks in times) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the process and all its descendants, those that ended included (granian serves
    from a child process). FileNotFoundError if the process itself is gone."""
    return cpu_seconds(pid, reaped_children=True) + sum(_subtree_cpu_seconds(child) for child in _children(pid))


def _subtree_cpu_seconds(pid: int) -> float:
    try:
        return tree_cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # ended meanwhile: its time moves to its parent's reaped children's once waited for


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return children


def machine_busy_seconds() -> float:
    """CPU time all cores of the machine have spent busy (not idle, not waiting for I/O) since boot."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy is the total less idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def cpu_rate(pid: int, seconds: float) -> float:
    """CPU seconds per second the process used over the next `seconds`."""
    started, used = time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - used) / (time.monotonic() - started)
