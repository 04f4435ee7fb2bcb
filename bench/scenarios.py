"""The scenarios of the benchmark, harness side: start the servers, drive the load generator, collect rows.

Each scenario starts its own app worker(s) on the run's database, so nothing
one leaves behind (open sockets, queued work, grown memory) weighs on the next.
A scenario returns its rows (dicts, saved as JSON) and knows how to print them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers
from bench.servers import ROOT

Row = dict


@dataclass(frozen=True)
class Plan:
    """How big and how long: `make bench` runs QUICK, `make bench-full` FULL."""

    chat_pairs: tuple[int, ...]
    chat_seconds: float
    fan_out_friends: int
    fan_out_repetitions: int
    idle_connections: tuple[int, ...]
    idle_users: int
    idle_window_s: float
    history_depths: tuple[int, ...]
    history_requests: int
    two_workers_pairs: int
    two_workers_seconds: float


QUICK = Plan(
    chat_pairs=(1, 20),
    chat_seconds=8.0,
    fan_out_friends=30,
    fan_out_repetitions=5,
    idle_connections=(1_000,),
    idle_users=10,
    idle_window_s=10.0,
    history_depths=(0, 10_000),
    history_requests=200,
    two_workers_pairs=20,
    two_workers_seconds=8.0,
)
FULL = Plan(
    chat_pairs=(1, 20, 100),
    chat_seconds=20.0,
    fan_out_friends=200,
    fan_out_repetitions=10,
    idle_connections=(1_000, 5_000, 10_000),
    idle_users=50,
    idle_window_s=20.0,
    history_depths=(0, 10_000, 1_000_000),
    # A p99 of 200 requests is their second slowest: one noisy moment of the machine.
    history_requests=1_000,
    two_workers_pairs=20,
    two_workers_seconds=20.0,
)


@dataclass(frozen=True)
class Run:
    """What every scenario of one run shares: the plan, the app's environment and its state directory."""

    plan: Plan
    env: dict[str, str]
    var_dir: Path


def pairs_file(run: Run, pairs: int) -> Path:
    """Where the run keeps a set of befriended pairs, so chat and two-workers sign up one set between them."""
    return run.var_dir / f"pairs-{pairs}.json"


class Skipped(Exception):
    """The scenario cannot run with these services; the message says why."""


def print_table(scenario: str, columns: list[tuple[str, int]], rows: list[list[Any]], *, header: bool = True) -> None:
    """A scenario's small table: a line of column titles, then a line per row, each value right-aligned
    in its column's width, after the scenario's name."""
    name_width = max(10, len(scenario) + 1)
    if header:
        print(f"{'scenario':<{name_width}}" + "".join(f"{title:>{width}}" for title, width in columns))
    for values in rows:
        cells = "".join(f"{value!s:>{width}}" for value, (_, width) in zip(values, columns, strict=True))
        print(f"{scenario:<{name_width}}{cells}")


# --- talking to the load generator and the seeder ------------------------------------


def loadgen(*args: str, timeout: float = 900) -> Row:
    """Run one load generator command to its end; its last output line is the result."""
    return run_json([sys.executable, "-m", "bench.loadgen", *args], timeout=timeout)


def run_json(command: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> Row:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])[:200]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class HeldSockets:
    """The load generator's `idle` command, kept running: each step asks it to hold more sockets open."""

    def __init__(self, base: str, users: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", "idle", "--base", base, "--users", str(users)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=servers.raise_open_files_limit,
        )

    def next_report(self) -> Row:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"the idle load generator ended (exit code {self.process.returncode}); see above")
        return json.loads(line)

    def hold(self, connections: int) -> Row:
        self.process.stdin.write(f"{connections}\n")
        self.process.stdin.flush()
        return self.next_report()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        servers.stop(self.process)


# --- 1. chat --------------------------------------------------------------------------


def chat(run: Run) -> list[Row]:
    """Closed-loop pairs on the app and on the yardstick, each pair count in turn; then the browser's
    sockets (HTML fragments) at the two-worker scenario's pair count, against that count's yardstick."""
    rows = []
    with servers.app_worker(run.env) as app, servers.yardstick() as yard:
        for pairs in run.plan.chat_pairs:
            drive = ["--pairs", str(pairs), "--seconds", str(run.plan.chat_seconds)]
            watch_app = ["--watch-pid", str(app.pid)]
            base = loadgen("chat", "--target", "yardstick", "--base", yard.url, "--watch-pid", str(yard.pid), *drive)
            # New pairs (empty chats), saved for two-workers.
            saved = ["--pairs-file", str(pairs_file(run, pairs))] if pairs == run.plan.two_workers_pairs else []
            ours = loadgen("chat", "--target", "app", "--base", app.url, *watch_app, *drive, *saved)
            rows.append(chat_row(pairs, base, ours))
            if pairs == run.plan.two_workers_pairs:
                browsers = loadgen("chat", "--target", "app", "--base", app.url, *watch_app, *drive, "--html")
                rows.append(chat_row(pairs, base, browsers))
    return rows


def chat_row(pairs: int, base: Row, ours: Row) -> Row:
    return {
        "pairs": pairs,
        "frames": ours["frames"],
        "yardstick": base,
        "app": ours,
        "ratio": round(ours["messages_per_s"] / base["messages_per_s"], 3),
        "p99_ratio": round(ours["p99_ms"] / base["p99_ms"], 2),
    }


def print_chat(rows: list[Row]) -> None:
    print_table(
        "chat",
        [
            ("pairs", 6),
            ("frames", 8),
            ("app msg/s", 12),
            ("yardstick", 12),
            ("ratio", 8),
            ("app p99 ms", 12),
            ("yard p99", 10),
            ("stored once", 13),
            ("app cores", 11),
            ("loop", 6),
            ("µs/msg", 8),
            ("busy", 6),
            ("yard cores", 11),
            ("busy", 6),
        ],
        [
            [
                row["pairs"],
                row["frames"],
                row["app"]["messages_per_s"],
                row["yardstick"]["messages_per_s"],
                row["ratio"],
                row["app"]["p99_ms"],
                row["yardstick"]["p99_ms"],
                row["app"]["stored_exactly_once"],
                row["app"]["server_cpu_cores"],
                row["app"]["server_loop_cpu_cores"],
                row["app"]["server_cpu_us_per_message"],
                row["app"]["machine_busy_cores"],
                row["yardstick"]["server_cpu_cores"],
                row["yardstick"]["machine_busy_cores"],
            ]
            for row in rows
        ],
    )
    print(
        "  (cores: CPU of the server over the run, and `busy` of the whole machine, load generator included;"
        " loop: of the app's cores, its event loop's (the rest is mostly the database thread);"
        " µs/msg: the server's CPU per delivered message)"
    )


# --- 2. fan-out -------------------------------------------------------------------------


def fan_out(run: Run) -> list[Row]:
    """One user with many online friends goes online and offline, several times."""
    plan = run.plan
    with servers.app_worker(run.env) as app:
        result = loadgen(
            "fan-out",
            "--base",
            app.url,
            "--friends",
            str(plan.fan_out_friends),
            "--repetitions",
            str(plan.fan_out_repetitions),
        )
    return [result]


def print_fan_out(rows: list[Row]) -> None:
    print_table(
        "fan-out",
        [
            ("friends", 8),
            ("changes", 8),
            ("online p50 ms", 15),
            ("online max", 12),
            ("offline p50 ms", 16),
            ("offline max", 13),
        ],
        [
            [
                row["friends"],
                row["repetitions"],
                row["online_last_p50_ms"],
                row["online_last_max_ms"],
                row["offline_last_p50_ms"],
                row["offline_last_max_ms"],
            ]
            for row in rows
        ],
    )
    print("  (time until the LAST friend has user_online / user_offline, from the start of the open / close)")


# --- 3. idle connections -----------------------------------------------------------------


def idle(run: Run) -> list[Row]:
    """Open sockets held silent: the server's memory per socket and the CPU its heartbeats cost.

    Steps up through the plan's socket counts on one server; memory per socket
    is (RSS now - RSS before the first socket) / sockets open. A step the
    server cannot reach (handshakes dropped even after retries) is reported as
    it stands and ends the scenario.
    """
    plan = run.plan
    limit = servers.raise_open_files_limit()
    # Each socket is a file in both processes, plus a margin for the server's own.
    steps = [n for n in plan.idle_connections if n + 500 <= limit]
    if not steps:
        raise Skipped(f"the open-files limit ({limit}) is too low for {plan.idle_connections[0]} sockets")
    rows: list[Row] = []
    with servers.app_worker(run.env) as app:
        held = HeldSockets(app.url, plan.idle_users)
        try:
            held.next_report()  # signed up
            before_kib = servers.resident_kib(app.pid)
            for wanted in steps:
                opened = held.hold(wanted)
                time.sleep(1)  # let the last handshakes' work drain before watching
                cpu = servers.cpu_rate(app.pid, plan.idle_window_s)
                after_kib = servers.resident_kib(app.pid)
                # Asking again for as many opens nothing new: it reports how many are still open.
                still_open = held.hold(wanted)["connections"]
                rows.append(
                    {
                        "wanted": wanted,
                        "connections": still_open,
                        "users": plan.idle_users,
                        "kib_per_connection": round((after_kib - before_kib) / max(1, still_open), 1),
                        "rss_before_mib": round(before_kib / 1024, 1),
                        "rss_mib": round(after_kib / 1024, 1),
                        "idle_cpu_s_per_s": round(cpu, 3),
                        "idle_window_s": plan.idle_window_s,
                        "opened_per_s": opened["opened_per_s"],
                        "failed_handshakes": opened["failed_handshakes"],
                    }
                )
                if still_open < wanted:
                    break
        finally:
            held.close()
    for skipped in sorted(set(plan.idle_connections) - set(steps)):
        rows.append({"wanted": skipped, "skipped": f"open-files limit {limit}"})
    return rows


def print_idle(rows: list[Row]) -> None:
    columns = [("sockets", 8), ("users", 7), ("KiB/socket", 12), ("RSS MiB", 9), ("(before)", 10)]
    columns += [("idle CPU s/s", 14), ("opened/s", 10), ("failed", 8)]
    print_table("idle", columns, [])
    for row in rows:
        if "skipped" in row:
            print(f"{'idle':<10}{row['wanted']:>8}  skipped: {row['skipped']}")
            continue
        values = [row["connections"], row["users"], row["kib_per_connection"], row["rss_mib"], row["rss_before_mib"]]
        values += [row["idle_cpu_s_per_s"], row["opened_per_s"], row["failed_handshakes"]]
        print_table("idle", columns, [values], header=False)
        if row["connections"] < row["wanted"]:
            print(f"{'':<10}  could not hold {row['wanted']}: the server dropped handshakes or sockets; stopped here")
    if rows and "idle_window_s" in rows[0]:
        print(
            f"  (a few people with many sockets each; CPU of the worker process over {rows[0]['idle_window_s']:.0f} s"
            " of idle, heartbeats every PRESENCE_HEARTBEAT_SECONDS; failed = handshakes retried)"
        )


# --- 4. history ------------------------------------------------------------------------------


def seed(run: Run, *args: str) -> Row:
    return run_json([sys.executable, "-m", "bench.seed_history", *args], env=run.env, timeout=3600)


# More than two pages of the API's default 30 messages: at every depth the newest page and the halfway
# `before=` page are both full, so the depths differ only in how much history lies behind them.
HISTORY_FIRST_MESSAGES = 61


def history(run: Run) -> list[Row]:
    """History pages at growing depths of one chat: over two pages sent, the rest seeded straight into the store."""
    plan = run.plan
    rows = []
    with servers.app_worker(run.env) as app:
        chat = loadgen("history-setup", "--base", app.url, "--messages", str(HISTORY_FIRST_MESSAGES))
        chat_id = str(chat["chat_id"])
        senders = ",".join(str(s) for s in chat["sender_ids"])
        try:
            for depth in plan.history_depths:
                seeded = seed(run, "--chat-id", chat_id, "--senders", senders, "--total", str(depth))
                pages = loadgen(
                    "history",
                    "--base",
                    app.url,
                    "--token",
                    chat["token"],
                    "--chat-id",
                    chat_id,
                    "--before",
                    seeded["deep_before"],
                    "--requests",
                    str(plan.history_requests),
                )
                rows.append(
                    {
                        "depth": seeded["messages"],
                        "seeded": seeded["inserted"],
                        "seed_seconds": seeded["seconds"],
                        "store": seeded["store"],
                        "requests": pages["requests"],
                        "newest": pages["newest"],
                        "deep": pages["deep"],
                        "chat_list": pages["chat_list"],
                    }
                )
        finally:
            # A shared database must not keep a million messages per run (SQLite goes with the run).
            if run.env.get("DB_HOST") or run.env.get("MONGODB_URL"):
                seed(run, "--chat-id", chat_id, "--delete")
    base = rows[0]["deep"]["p99_ms"] if rows else None
    for row in rows:
        row["deep_p99_vs_first"] = round(row["deep"]["p99_ms"] / base, 2) if base else None
    return rows


def print_history(rows: list[Row]) -> None:
    print_table(
        "history",
        [
            ("messages", 10),
            ("newest p50", 12),
            ("p99 ms", 8),
            ("deep p50", 10),
            ("p99 ms", 8),
            ("deep p99 vs first", 19),
            ("list p50", 10),
            ("p99 ms", 8),
        ],
        [
            [
                row["depth"],
                row["newest"]["p50_ms"],
                row["newest"]["p99_ms"],
                row["deep"]["p50_ms"],
                row["deep"]["p99_ms"],
                f"{row['deep_p99_vs_first']}x",
                row["chat_list"]["p50_ms"],
                row["chat_list"]["p99_ms"],
            ]
            for row in rows
        ],
    )
    if rows:
        print(
            f"  (GET /api/chats/{{id}}/messages, newest and deep pages, and GET /api/chats, the chat list with each"
            f" chat's last message: {rows[0]['requests']} requests each, one at a time; all but "
            f"{rows[0]['depth']} messages seeded straight into the {rows[0]['store']} message store)"
        )


# --- 5. two workers ---------------------------------------------------------------------------


# How the pairs meet two workers: each pair's two sides on different workers (every message crosses
# Redis), or each pair whole on one worker, half the pairs on each (its messages stay in one process).
TWO_WORKER_SPREADS = ("sides", "pairs")


def two_workers(run: Run) -> list[Row]:
    """The chat scenario on one worker, then with the same pairs on two workers that share Redis (each
    spread of TWO_WORKER_SPREADS), then on one worker again."""
    if not run.env.get("REDIS_HOST"):
        raise Skipped("needs REDIS_HOST (two workers share the Redis channel layer)")
    plan = run.plan
    pairs = pairs_file(run, plan.two_workers_pairs)
    drive = ["--pairs-file", str(pairs), "--seconds", str(plan.two_workers_seconds)]
    with servers.app_worker(run.env) as first, servers.app_worker(run.env) as second:
        both = ["--base", first.url, "--base", second.url]
        if not pairs.exists():  # chat did not run: sign up through both workers, twice as fast
            loadgen("pairs", *both, "--pairs", str(plan.two_workers_pairs), "--out", str(pairs))
        watch = ["--watch-pid", str(first.pid), "--watch-pid", str(second.pid)]
        one_worker_args = ["chat", "--target", "app", "--base", first.url, *watch, *drive]
        # One worker before and after the two: the machine's speed drifts within a minute.
        one_before = loadgen(*one_worker_args)
        two_worker_runs = {
            how: loadgen("chat", "--target", "app", *both, *watch, *drive, "--spread", how)
            for how in TWO_WORKER_SPREADS
        }
        one_after = loadgen(*one_worker_args)
    one_rate = (one_before["messages_per_s"] + one_after["messages_per_s"]) / 2
    return [
        {
            "pairs": plan.two_workers_pairs,
            "spread": how,
            "one_worker": one_before,
            "one_worker_after": one_after,
            "two_workers": two,
            "ratio": round(two["messages_per_s"] / one_rate, 2),
        }
        for how, two in two_worker_runs.items()
    ]


def print_two_workers(rows: list[Row]) -> None:
    print_table(
        "two-workers",
        [
            ("pairs", 6),
            ("spread", 7),
            ("1 worker msg/s", 18),
            ("2 workers", 11),
            ("ratio", 7),
            ("p99 ms 1w", 15),
            ("2w", 8),
            ("stored once", 13),
            ("cores 1w", 14),
            ("2w", 6),
            ("busy 1w", 12),
            ("2w", 6),
        ],
        [
            [
                row["pairs"],
                row["spread"],
                f"{row['one_worker']['messages_per_s']}, {row['one_worker_after']['messages_per_s']}",
                row["two_workers"]["messages_per_s"],
                row["ratio"],
                f"{row['one_worker']['p99_ms']}, {row['one_worker_after']['p99_ms']}",
                row["two_workers"]["p99_ms"],
                all(row[run]["stored_exactly_once"] for run in ("one_worker", "one_worker_after", "two_workers")),
                ", ".join(str(row[run]["server_cpu_cores"]) for run in ("one_worker", "one_worker_after")),
                row["two_workers"]["server_cpu_cores"],
                ", ".join(str(row[run]["machine_busy_cores"]) for run in ("one_worker", "one_worker_after")),
                row["two_workers"]["machine_busy_cores"],
            ]
            for row in rows
        ],
    )
    print(
        "  (the same pairs, chat's when it ran: on one worker, then on two, then on one again; the ratio is to the "
        "mean of the two one-worker runs. Spread sides: each pair's two sides on different workers; pairs: each "
        "pair on one worker, half the pairs on each. Cores: CPU of the workers over the run; busy: of the whole "
        "machine)"
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Run], list[Row]]
    print_rows: Callable[[list[Row]], None]


SCENARIOS = [
    Scenario("chat", chat, print_chat),
    Scenario("fan-out", fan_out, print_fan_out),
    Scenario("idle", idle, print_idle),
    Scenario("history", history, print_history),
    Scenario("two-workers", two_workers, print_two_workers),
]


def services_description() -> str:
    """The services the app runs on, as the environment names them."""
    if not any(os.environ.get(name) for name in ("DB_HOST", "REDIS_HOST", "MONGODB_URL")):
        return "embedded defaults"
    parts = ["MariaDB" if os.environ.get("DB_HOST") else "SQLite"]
    parts.append("Redis" if os.environ.get("REDIS_HOST") else "in-process layer and Redis")
    if os.environ.get("MONGODB_URL"):
        parts.append("MongoDB")
    return " + ".join(parts)
