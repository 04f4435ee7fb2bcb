"""`manage.py run_cluster` (what `make run-cluster` runs): worker processes behind nginx on one port.

The command runs as a person would start it, on the tests' database and Redis,
and is stopped the way Ctrl-C stops it. It needs nginx and a real Redis
(REDIS_HOST); without either the test is skipped, saying which is missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from chat_realtime.management.commands.run_cluster import (
    NGINX_INSTALL_HINT,
    find_nginx,
    nginx_config,
    redis_problem,
)
from chat_realtime.tests.servers import Client, app_environment, free_port
from conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cluster:
    url: str
    ws_url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def missing_for_a_cluster() -> str | None:
    """Why a cluster cannot run here, or None: the command's own checks."""
    if find_nginx() is None:
        return f"nginx is missing, so the local cluster test did not run: {NGINX_INSTALL_HINT} (.ci/run installs it)"
    problem = redis_problem()
    if problem:
        return f"the local cluster test did not run: {problem}"
    return None


@pytest.fixture
def cluster(tmp_path):
    reason = missing_for_a_cluster()
    if reason:
        pytest.skip(reason)
    port = free_port()
    log = tmp_path / "run_cluster.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_cluster", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=app_environment(tmp_path),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = Cluster(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/", process, log)
    try:
        deadline = time.monotonic() + 90
        while status_of(started.url + "/healthz") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the cluster did not come up:\n{started.output()[-4000:]}")
            time.sleep(0.2)
        yield started
    finally:
        # The test stops it itself; this is for a test that failed on the way.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def accepts_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


async def test_a_two_worker_cluster_serves_one_port_carries_messages_across_workers_and_stops_on_ctrl_c(
    cluster, befriend
):
    assert await asyncio.to_thread(status_of, cluster.url + "/healthz") == 200
    # Two people sign up through the proxy; the API gives them their tokens.
    sessions = [
        await asyncio.to_thread(
            post_json,
            cluster.url + "/api/auth/register",
            {"username": name, "email": f"{name}@example.com", "phone_number": phone, "password": PASSWORD},
        )
        for name, phone in (("alice", "+15550001001"), ("bob", "+15550001002"))
    ]
    tokens = [session["access"] for session in sessions]
    alice, bob = [await User.objects.aget(pk=session["user"]["id"]) for session in sessions]
    chat = await sync_to_async(befriend)(alice, bob)

    # Round robin: two sockets opened one after the other land on the two workers.
    alice, bob = (Client.with_token(cluster.ws_url, token) for token in tokens)
    async with alice as alice_socket, bob as bob_socket:
        assert alice_socket.upstream != bob_socket.upstream
        for person in (alice_socket, bob_socket):
            await person.send({"type": "join_chat", "chat_id": chat.pk})
            await person.wait_for(lambda f: f == {"type": "joined_chat", "chat_id": chat.pk})

        await alice_socket.send({"type": "send_message", "chat_id": chat.pk, "text": "across", "client_id": "c1"})
        ack = await alice_socket.wait_for(lambda f: f["type"] == "message_ack" and f["client_id"] == "c1")
        delivered = await bob_socket.wait_for(lambda f: f["type"] == "new_message")
        assert delivered["message"]["id"] == ack["message"]["id"]
        assert delivered["message"]["text"] == "across"
        workers = {alice_socket.upstream, bob_socket.upstream}

    cluster.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert await asyncio.to_thread(cluster.process.wait, 30) == 0, cluster.output()[-4000:]
    assert "Stopped nginx and every worker." in cluster.output()
    proxy_address = cluster.url.removeprefix("http://")
    for address in (proxy_address, *workers):
        assert not accepts_connections(address), f"{address} still answers after the cluster stopped"


def test_the_local_proxy_uses_the_proxying_directives_of_the_deployed_one(tmp_path):
    """deploy/nginx.conf's directives, but for those that name Docker's network."""
    docker_only = re.compile(r"^(resolver|listen|set|proxy_pass|proxy_set_header Host) ")
    deployed = [" ".join(line.split()) for line in (ROOT / "deploy" / "nginx.conf").read_text().splitlines()]
    directives = [line for line in deployed if line and not line.startswith("#") and not docker_only.match(line)]
    generated = nginx_config(run_dir=tmp_path, port=8000, worker_ports=[8001, 8002])
    local = {" ".join(line.split()) for line in generated.splitlines()}

    assert [line for line in directives if line not in local] == []
    assert "server 127.0.0.1:8001;" in local and "server 127.0.0.1:8002;" in local
    assert "daemon off;" in local and f"pid {tmp_path}/nginx.pid;" in local
