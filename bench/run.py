"""Run the benchmarks: the app (and the yardstick) in their own processes, driven by the load generator.

    make bench                                  # quick: every scenario, a few minutes at most
    python -m bench.run --full                  # full sizes and durations
    python -m bench.run --only fan-out,idle     # a subset (names as below)
    python -m bench.run --only chat --message-rate-limit 1000000/10   # sends pay for the flood check

Scenarios (sizes quick / full):
  chat         closed-loop pairs, app against the yardstick (1, 20 / 1, 20, 100 pairs; 8 / 20 s);
               20 pairs again with the browser's sockets (HTML fragments)
  fan-out      a user with many online friends goes online and offline (50 / 200 friends)
  idle         held open sockets: server memory per socket, heartbeat CPU (1k / 1k, 5k, 10k sockets)
  history      history page latency as one chat grows (0, 10k / 0, 10k, 1M messages, seeded)
  two-workers  chat, 20 pairs, on one worker and across two sharing Redis (needs REDIS_HOST)

The app runs with production settings (DEBUG off) on the services the
environment names (the embedded defaults when none is set), with every rate
limit off: a benchmark must not measure the flood limit (`--message-rate-limit`
checks the message limit at a rate never reached, to measure what checking it
costs). Each scenario prints
a small table and writes bench/results/<scenario>-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import servers
from bench.scenarios import FULL, QUICK, SCENARIOS, Run, Skipped, services_description

RESULTS = servers.ROOT / "bench" / "results"


def save(name: str, stamp: str, mode: str, services: str, rows: list[dict]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    report = {
        "when": stamp,
        "services": services,
        "mode": mode,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "rows": rows,
    }
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    return path


def main() -> None:
    names = [scenario.name for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full sizes and durations")
    parser.add_argument("--only", help=f"comma-separated scenarios to run, of: {', '.join(names)}")
    parser.add_argument(
        "--message-rate-limit",
        default="off",
        metavar="COUNT/SECONDS",
        help="check the message rate limit at this rate (one the load never reaches, e.g. 1000000/10), "
        "to measure what checking it costs; off by default",
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",")] if args.only else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(names)}")
    mode = "full" if args.full else "quick"
    services = services_description()
    limits = f"rate limits off ({', '.join(servers.RATE_LIMITS_OFF)})"
    if args.message_rate_limit != "off":
        limits += f", except MESSAGE_RATE_LIMIT={args.message_rate_limit}, checked on every send"
        services += f", MESSAGE_RATE_LIMIT={args.message_rate_limit}"
    print(f"chat-realtime benchmarks ({mode}) on {services}; {limits}.")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    failed = []
    servers.raise_open_files_limit()
    with tempfile.TemporaryDirectory() as var_dir:
        env = servers.app_environment(Path(var_dir), message_rate_limit=args.message_rate_limit)
        servers.migrate(env)
        run = Run(plan=FULL if args.full else QUICK, env=env, var_dir=Path(var_dir))
        for scenario in SCENARIOS:
            if scenario.name not in wanted:
                continue
            print()
            scenario_started = time.monotonic()
            try:
                rows = scenario.run(run)
            except Skipped as reason:
                print(f"{scenario.name:<12}skipped: {reason}")
                continue
            except Exception:
                # One broken scenario should not cost the others' results.
                print(f"{scenario.name:<12}FAILED:")
                traceback.print_exc(file=sys.stdout)
                failed.append(scenario.name)
                continue
            scenario.print_rows(rows)
            saved = save(scenario.name, stamp, mode, services, rows)
            took = time.monotonic() - scenario_started
            print(f"  [{took:.0f} s, {saved.relative_to(servers.ROOT)}]", flush=True)
    print(f"\n{len(wanted)} scenario(s) in {time.monotonic() - started:.0f} s.")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
