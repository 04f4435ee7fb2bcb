"""Compare two versions of the app side by side: both serve the chat scenario (or history pages) at the same time.

    python -m bench.compare --base HEAD~1                 # this checkout against an earlier commit
    python -m bench.compare --base main --pairs 20 --rounds 5
    python -m bench.compare --base HEAD --base-python /path/to/other-venv/bin/python   # the same code, other packages
    python -m bench.compare --base HEAD~1 --scenario history --requests 3000
    python -m bench.compare --base HEAD~1 --alternate     # one worker loaded at a time
    python -m bench.compare --base HEAD~1 --html          # the browser's sockets (HTML fragments)

The machines here change speed by up to ±50 % within minutes, so two runs one
after the other cannot tell a 10 % change from noise. Here the two workers
(this checkout's and a clean checkout of `--base`, each on its own database
and Redis database) are loaded at once by two load generators, so whatever
the machine does hits both; each round prints both rates, their worker CPU
per delivered message, and the ratio this/base. Read the ratios of several
rounds. Both workers share the machine's cores, so absolute rates are lower
than in `bench.run`; the ratio is the result. Loaded together, the two
workers keep the machine's cores busy, which hides a change to what a worker
waits for (round trips to the database, say) wherever one worker alone leaves
cores idle: `--alternate` loads one worker at a time within each round, which
one first alternating, so each has the machine to itself as in `bench.run`
(its ratios move more from round to round). `--scenario history` asks both
workers for the newest page of a chat in turn, one request at a time, and
prints both latencies.

Runs on the services the environment names (the embedded defaults when none),
rate limits off, like `bench.run` (`--message-rate-limit` as there). On the embedded defaults each worker has its
own SQLite file; on MariaDB both use DB_NAME (each signs up its own people),
which needs the two versions' migrations to agree.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench import servers
from bench.loadgen import timed_get
from bench.scenarios import loadgen

# The two workers' Redis databases, apart from each other and from the test suite's.
REDIS_DATABASES = {"this": "6", "base": "7"}
HISTORY_WARM_UP = 100


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A clean work tree of `ref`, removed afterwards."""
    git = shutil.which("git")
    if git is None:
        sys.exit("bench.compare needs git, to check out the base version")
    with tempfile.TemporaryDirectory() as parent:
        tree = Path(parent) / "base"
        subprocess.run([git, "worktree", "add", "--detach", "-q", str(tree), ref], cwd=servers.ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run([git, "worktree", "remove", "--force", str(tree)], cwd=servers.ROOT, check=False)


def chat_round(name: str, url: str, pairs: Path, args: argparse.Namespace, results: dict) -> None:
    """One round of the chat scenario on one worker (`args.pairs` pairs, saved in `pairs`): `results[name]`."""
    drive = ["--pairs", str(args.pairs), "--seconds", str(args.seconds), "--pairs-file", str(pairs)]
    results[name] = loadgen("chat", "--target", "app", "--base", url, *drive, *(["--html"] if args.html else []))


def cpu_use(name: str, pid: int, seconds: float, results: dict) -> None:
    """The worker's CPU seconds per second over the middle half of a round (after the sockets opened)."""
    time.sleep(seconds / 4)
    results[name] = servers.cpu_rate(pid, seconds / 2)


def compare_chat(workers: dict[str, servers.Server], args: argparse.Namespace, var: Path) -> None:
    """Rounds of the chat scenario on both workers at once: each one's rate, CPU per message, and the ratio."""
    pairs = {}
    for name, app in workers.items():
        pairs[name] = var / name / "pairs.json"
        loadgen("pairs", "--base", app.url, "--pairs", str(args.pairs), "--out", str(pairs[name]))
    ratios = []
    for round_number in range(1, args.rounds + 1):
        results: dict = {}
        cpu: dict = {}
        threads = {
            name: [
                threading.Thread(target=chat_round, args=(name, app.url, pairs[name], args, results)),
                threading.Thread(target=cpu_use, args=(name, app.pid, args.seconds, cpu)),
            ]
            for name, app in workers.items()
        }
        if args.alternate:
            # One worker loaded at a time, which one first alternating: each has the machine to itself.
            turns = [threads["this"], threads["base"]] if round_number % 2 else [threads["base"], threads["this"]]
        else:
            turns = [threads["this"] + threads["base"]]
        for turn in turns:
            for thread in turn:
                thread.start()
            for thread in turn:
                thread.join()
        failed = [name for name in workers if name not in results]
        if failed:
            sys.exit(f"round {round_number}: the load generator of {' and '.join(failed)} failed (its error is above)")
        ratio = results["this"]["messages_per_s"] / results["base"]["messages_per_s"]
        ratios.append(ratio)
        described = "  ".join(
            f"{name} {results[name]['messages_per_s']:7.1f} msg/s, p99 {results[name]['p99_ms']:5.1f} ms, "
            f"{cpu[name] / results[name]['messages_per_s'] * 1e6:4.0f} µs CPU/msg"
            for name in ("this", "base")
        )
        print(f"round {round_number}: {described}  this/base {ratio:.3f}", flush=True)
    print(f"this/base: median {statistics.median(ratios):.3f}, from {min(ratios):.3f} to {max(ratios):.3f}")


def compare_history(workers: dict[str, servers.Server], requests: int) -> None:
    """The newest history page of a 40-message chat from both workers in turn (which one goes first
    alternates), one request at a time on a kept connection each: both latencies, side by side."""
    pages = {}
    for name, app in workers.items():
        chat = loadgen("history-setup", "--base", app.url, "--messages", "40")
        address = urlsplit(app.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        headers = {"Authorization": f"Bearer {chat['token']}"}
        pages[name] = (connection, f"/api/chats/{chat['chat_id']}/messages", headers)
    timings: dict[str, list[float]] = {name: [] for name in workers}
    for n in range(HISTORY_WARM_UP + requests):
        for name in ("this", "base") if n % 2 else ("base", "this"):
            elapsed = timed_get(*pages[name])
            if n >= HISTORY_WARM_UP:
                timings[name].append(elapsed)
    for connection, _, _ in pages.values():
        connection.close()
    p50 = {}
    for name in ("this", "base"):
        ordered = sorted(timings[name])
        at = {p: ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000 for p in (50, 90, 99)}
        p50[name] = at[50]
        print(f"{name}: p50 {at[50]:.2f} ms, p90 {at[90]:.2f} ms, p99 {at[99]:.2f} ms ({requests} pages)")
    print(f"this/base p50: {p50['this'] / p50['base']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git commit (or branch, tag) to compare against")
    parser.add_argument("--base-python", default=sys.executable, help="the interpreter for the base worker")
    parser.add_argument("--scenario", choices=("chat", "history"), default="chat")
    parser.add_argument("--pairs", type=int, default=20, help="chat: closed-loop pairs per worker")
    parser.add_argument("--seconds", type=float, default=15, help="chat: length of a round")
    parser.add_argument("--rounds", type=int, default=3, help="chat: rounds")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="chat: load one worker at a time instead of both at once (for changes to what a worker waits for)",
    )
    parser.add_argument("--html", action="store_true", help="chat: the browser's sockets (HTML fragments)")
    parser.add_argument("--requests", type=int, default=3000, help="history: pages from each worker")
    parser.add_argument(
        "--message-rate-limit",
        default="off",
        metavar="COUNT/SECONDS",
        help="both workers check the message rate limit at this rate (one never reached, e.g. 1000000/10)",
    )
    args = parser.parse_args()
    servers.raise_open_files_limit()
    if args.scenario == "chat":
        how = "one worker at a time" if args.alternate else "both at once"
        if args.html:
            how += ", the browser's sockets"
        if args.message_rate_limit != "off":
            how += f", MESSAGE_RATE_LIMIT={args.message_rate_limit}"
        print(
            f"this checkout against {args.base}: {args.pairs} pairs, "
            f"{args.rounds} rounds of {args.seconds:.0f} s, {how}"
        )
    else:
        print(f"this checkout against {args.base}: {args.requests} history pages from each, in turn")

    with checkout(args.base) as base_root, tempfile.TemporaryDirectory() as var, contextlib.ExitStack() as stack:
        workers = {}
        for name, root, python in (
            ("this", servers.ROOT, sys.executable),
            ("base", base_root, args.base_python),
        ):
            var_dir = Path(var) / name
            var_dir.mkdir()
            env = {
                **servers.app_environment(var_dir, message_rate_limit=args.message_rate_limit),
                "REDIS_DB": REDIS_DATABASES[name],
            }
            servers.migrate(env, root=root, python=python)
            workers[name] = stack.enter_context(servers.app_worker(env, root=root, python=python))
        if args.scenario == "chat":
            compare_chat(workers, args, Path(var))
        else:
            compare_history(workers, args.requests)


if __name__ == "__main__":
    main()
