"""The harness's readings of a server's CPU, which every table's cores and µs per message rest on."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from bench import servers

# About a third of a second of one core here: enough to stand out of a reading's rounding.
BURN = "x = 0\nfor i in range(4_000_000): x += i"


def _burn() -> None:
    exec(BURN, {})


def test_a_process_trees_cpu_counts_its_children_those_that_ended_too():
    # A parent that waits for a child burning CPU, then says so and idles (as granian's main process waits).
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
            "print('done', flush=True)\ntime.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline() == "done\n"
        own = servers.cpu_seconds(parent.pid)
        tree = servers.tree_cpu_seconds(parent.pid)
    finally:
        parent.kill()
        parent.wait()

    assert tree - own > 0.1  # the ended child's time, which the parent's own time leaves out


def test_a_process_that_is_gone_is_an_error_not_zero_cpu():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()

    with pytest.raises(psutil.NoSuchProcess):
        servers.tree_cpu_seconds(process.pid)
    with pytest.raises(psutil.NoSuchProcess):
        servers.main_thread_cpu_seconds(process.pid)


def test_the_main_threads_cpu_leaves_out_the_other_threads():
    pid = os.getpid()
    main_before, process_before = servers.main_thread_cpu_seconds(pid), servers.cpu_seconds(pid)
    worker = threading.Thread(target=_burn)
    worker.start()
    worker.join()
    main_used = servers.main_thread_cpu_seconds(pid) - main_before
    process_used = servers.cpu_seconds(pid) - process_before

    assert process_used > 0.1
    assert main_used < process_used / 2


def test_a_process_whose_main_thread_cannot_be_told_apart_says_so(monkeypatch):
    # As where threads are not numbered by their process's id.
    found = psutil.Process().threads()
    other = [thread._replace(id=-thread.id) for thread in found]
    monkeypatch.setattr(psutil.Process, "threads", lambda self: other)

    with pytest.raises(LookupError, match="main thread cannot be told apart"):
        servers.main_thread_cpu_seconds(os.getpid())


def test_the_machines_busy_time_grows_at_least_by_what_this_process_burns():
    busy_before, used_before = servers.machine_busy_seconds(), time.process_time()
    _burn()
    busy, used = servers.machine_busy_seconds() - busy_before, time.process_time() - used_before

    assert used > 0.1
    assert busy >= used * 0.9  # the kernel's per-core counters tick a little coarser than the process's own
