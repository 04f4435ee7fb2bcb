"""Run the benchmarks: the app and the yardstick, each in its own process, driven by the load generator.

    make bench                      # quick: chat with 1 and 20 pairs, 8 s each
    python -m bench.run --full      # chat with 1, 20 and 100 pairs, 20 s each

The app runs with production settings (DEBUG off) on the services the
environment names (the embedded defaults when none is set), with every rate
limit off: a benchmark must not measure the flood limit. Results print as a
table and go to bench/results/<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RATE_LIMITS_OFF = {
    name: "off"
    for name in ("MESSAGE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "REGISTER_RATE_LIMIT", "PASSWORD_RESET_RATE_LIMIT")
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def app_environment(var_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ACCESS_TOKEN_SECRET": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "VAR_DIR": var_dir,
        "LOG_LEVEL": "WARNING",
        **RATE_LIMITS_OFF,
    }


def start_app(var_dir: str) -> tuple[subprocess.Popen, str]:
    env = app_environment(var_dir)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chat_realtime.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/healthz", process)
    return process, url


def start_yardstick() -> tuple[subprocess.Popen, str]:
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
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, process)
    return process, url


def drive(target: str, base: str, pairs: int, seconds: float) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "chat",
            "--target",
            target,
            "--base",
            base,
            "--pairs",
            str(pairs),
            "--seconds",
            str(seconds),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    pair_counts, seconds = ((1, 20, 100), 20.0) if args.full else ((1, 20), 8.0)
    services = "MariaDB + Redis" if os.environ.get("DB_HOST") and os.environ.get("REDIS_HOST") else "embedded defaults"
    print(f"chat-realtime benchmarks on {services}; rate limits off ({', '.join(RATE_LIMITS_OFF)}).")

    rows = []
    with tempfile.TemporaryDirectory() as var_dir:
        app, app_url = start_app(var_dir)
        yardstick, yardstick_url = start_yardstick()
        try:
            for pairs in pair_counts:
                base = drive("yardstick", yardstick_url, pairs, seconds)
                ours = drive("app", app_url, pairs, seconds)
                rows.append(
                    {
                        "pairs": pairs,
                        "yardstick": base,
                        "app": ours,
                        "ratio": round(ours["messages_per_s"] / base["messages_per_s"], 3),
                        "p99_ratio": round(ours["p99_ms"] / base["p99_ms"], 2),
                    }
                )
        finally:
            for process in (app, yardstick):
                process.terminate()
                process.wait(timeout=10)

    print(
        f"{'scenario':<10}{'pairs':>6}{'app msg/s':>12}{'yardstick':>12}{'ratio':>8}"
        f"{'app p99 ms':>12}{'yard p99':>10}{'stored once':>13}"
    )
    for row in rows:
        print(
            f"{'chat':<10}{row['pairs']:>6}{row['app']['messages_per_s']:>12}{row['yardstick']['messages_per_s']:>12}"
            f"{row['ratio']:>8}{row['app']['p99_ms']:>12}{row['yardstick']['p99_ms']:>10}"
            f"{row['app']['stored_exactly_once']!s:>13}"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "when": stamp,
        "services": services,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rows": rows,
    }
    (RESULTS / f"chat-{stamp}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
