"""A fleet of edge nodes behind a real web server (docs/deployment.md,
"A fleet of edge nodes").

Three Envoy processes (three edge nodes, each with the filter and the
revocation service, ``poll_interval_s`` 2) poll ONE list served by Debian's
nginx, started here on 127.0.0.1 as a foreground child (stopped and started
again by PID) serving a static file with nginx's own ``ETag``. The list is
written into nginx's root by ``tokengate revoke`` (atomic rename). Shown:

* a revocation reaches every node within ``poll_interval_s`` + 1 s, measured
  per node from the moment ``tokengate revoke`` returned;
* in steady state the nodes' polls are answered 304, counted from nginx's
  access log and from the nodes' ``fetch_ok`` / ``fetch_not_modified``;
* while nginx is stopped every node keeps its list (the revoked token
  refused, a fresh one allowed: the list is within ``max_stale_s``) and
  counts failures (``fetch_failed`` rises on every node); a revocation made
  during the outage reaches every node within ``poll_interval_s`` + 1 s of
  nginx's return, and the fetches succeed again;
* the sizes the paper sizing in the docs rests on: bytes per entry of a list
  ``tokengate revoke`` writes, unsigned and signed, and the size of nginx's
  304 answer.

A missing nginx is a failure, never a skip (``scripts/setup`` installs it).

Run: ``.venv/bin/python -m pytest tests/e2e/test_fleet.py -q -s`` (``-s``
prints the figures).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import Envoy, bootstrap, cluster, free_port, mint, new_key, revocation_service, tokengate_filter, wait_until
from servers import Nginx, nginx_binary

POLL_S = 2
DEADLINE_S = POLL_S + 1  # docs/revocation.md, "Polling and the hand-over to workers"
MAX_STALE_S = 60
NODES = 3
STAT = "wasmcustom.tokengate.revocation."
LIST_PATH = "/v1/revocations"

OK = (200, None)
REVOKED = (401, "revoked")


def revoke(cli: Path, list_file: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(cli), "revoke", "--list", str(list_file), *args], check=True, capture_output=True, timeout=30, env=env)


class Node:
    """One edge node: Envoy (one worker) with the filter and the service
    polling nginx."""

    def __init__(self, workdir: Path, nginx_port: int, key: str) -> None:
        self.key = key
        filter_cfg = {
            "realm": "fleet",
            "keys": [{"kid": "k1", "alg": "HS256", "secret_env": "TOKENGATE_FLEET_KEY"}],
            "rules": [{"match": {"prefix": "/"}}],
            "revocation": {"max_stale_s": MAX_STALE_S, "on_unavailable": "deny"},
        }
        service_cfg = {"cluster": "revocation_source", "authority": "revocations.internal", "path": LIST_PATH, "poll_interval_s": POLL_S, "timeout_ms": 500}
        config = bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            http_filters=[tokengate_filter(filter_cfg)],
            clusters=[cluster("revocation_source", nginx_port)],
            bootstrap_extensions=[revocation_service(service_cfg)],
            access_log=False,
        )
        self.envoy = Envoy(config, workdir=workdir, env={"TOKENGATE_FLEET_KEY": key}, concurrency=1, start_now=False)

    def call(self, token: str) -> tuple[int, str | None]:
        r = self.envoy.request("GET", "/api", headers={"authorization": f"Bearer {token}"})
        if r.status == 200:
            return OK
        try:
            return r.status, r.json().get("reason")
        except ValueError:
            return r.status, f"<not JSON: {r.body[:60]!r}>"

    def counters(self) -> dict[str, int]:
        stats = self.envoy.stats()
        return {n: int(stats.get(STAT + n, 0) or 0) for n in ("fetch_ok", "fetch_not_modified", "fetch_failed", "version", "entries")}


def reach_times(nodes: list[Node], token: str, t0: float, limit_s: float) -> list[float | None]:
    """Per node, seconds from ``t0`` until ``token`` is first refused as
    revoked (asked every 20 ms on fresh connections, one thread per node,
    until ``t0 + limit_s``); before that it must pass."""
    found: list[float | None] = [None] * len(nodes)
    wrong: list[str] = []

    def watch(i: int) -> None:
        while time.monotonic() < t0 + limit_s:
            got = nodes[i].call(token)
            if got == REVOKED:
                found[i] = time.monotonic() - t0
                return
            if got != OK:
                wrong.append(f"node {i}: {got}")
                return
            time.sleep(0.02)

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong
    return found


@pytest.fixture
def nginx_bin() -> str:
    """Debian's nginx; a missing one is a failure, never a skip."""
    found = nginx_binary()
    if not found:
        pytest.fail("nginx is missing: run scripts/setup (apt-get install nginx-light)", pytrace=False)
    return found


@pytest.fixture
def fleet(tmp_path: Path, nginx_bin: str, cli_path: Path, wasm_path: Path) -> Iterator[dict[str, Any]]:
    www = tmp_path / "www"
    (www / "v1").mkdir(parents=True)
    list_file = www / "v1" / "revocations"
    revoke(cli_path, list_file, "--jti", "fleet-seed", "--exp", str(int(time.time()) + 3600))
    nginx = Nginx(www, free_port(), nginx_bin, tmp_path / "nginx").start()
    key = new_key()
    nodes = [Node(tmp_path / f"node{i}", nginx.port, key) for i in range(NODES)]
    try:
        for node in nodes:
            node.envoy.start()
        yield {"nginx": nginx, "nodes": nodes, "list": list_file, "key": key}
    finally:
        for node in nodes:
            node.envoy.stop()
        nginx.stop()


def test_one_list_on_nginx_reaches_every_node_and_survives_its_outage(fleet: dict[str, Any], cli_path: Path) -> None:
    nginx: Nginx = fleet["nginx"]
    nodes: list[Node] = fleet["nodes"]
    list_file: Path = fleet["list"]
    key: str = fleet["key"]
    far = str(int(time.time()) + 3600)
    for node in nodes:
        wait_until(lambda node=node: node.counters()["version"] == 1, 10, 0.05, "version 1 on every node")

    fresh = mint(key, kid="k1", sub="alice")
    victim = mint(key, kid="k1", sub="bob", jti="fleet-victim")
    late = mint(key, kid="k1", sub="carol", jti="fleet-late")
    for node in nodes:
        assert node.call(victim) == OK and node.call(fresh) == OK

    # --- 1. a revocation reaches every node within poll_interval_s + 1 s
    revoke(cli_path, list_file, "--jti", "fleet-victim", "--exp", far)
    t0 = time.monotonic()
    reach = reach_times(nodes, victim, t0, DEADLINE_S + 1)
    print(f"\nrevocation reached nodes after {['-' if r is None else f'{r:.2f}' for r in reach]} s (limit {DEADLINE_S} s)")
    assert all(r is not None and r <= DEADLINE_S for r in reach), reach
    for node in nodes:
        assert node.call(fresh) == OK

    # --- 2. steady state: nothing changes, polls are answered 304
    time.sleep(POLL_S + 0.5)  # every node has fetched the new list and polled once more
    before = [node.counters() for node in nodes]
    log_before = len(nginx.access_lines())
    time.sleep(3 * POLL_S + 0.2)
    after = [node.counters() for node in nodes]
    steady = [line for line in nginx.access_lines()[log_before:]]
    statuses = [line[1] for line in steady]
    share_log = statuses.count("304") / len(statuses)
    ok = sum(a["fetch_ok"] - b["fetch_ok"] for a, b in zip(after, before))
    nm = sum(a["fetch_not_modified"] - b["fetch_not_modified"] for a, b in zip(after, before))
    share_nodes = nm / (ok + nm)
    bytes_304 = sorted({int(line[2]) for line in steady if line[1] == "304"})
    request_bytes = sorted({int(line[4]) for line in steady})
    print(
        f"steady state over {3 * POLL_S} s: nginx log {statuses.count('304')}/{len(statuses)} answers 304 ({share_log:.0%}); "
        f"nodes' counters {nm}/{ok + nm} not modified ({share_nodes:.0%}); a 304 is {bytes_304} bytes, a poll request {request_bytes} bytes"
    )
    assert len(statuses) >= NODES * 2, statuses
    assert share_log == 1.0 and share_nodes == 1.0, (statuses, before, after)

    # --- 3. nginx stops: every node keeps its list and counts failures
    failed_before = [node.counters()["fetch_failed"] for node in nodes]
    nginx.stop()
    down_at = time.monotonic()
    # revoke during the outage: written, not served yet
    revoke(cli_path, list_file, "--jti", "fleet-late", "--exp", far)
    for i, node in enumerate(nodes):
        wait_until(lambda node=node, i=i: node.counters()["fetch_failed"] > failed_before[i], POLL_S + 2, 0.1, f"fetch_failed rises on node {i}")
    failed_mid = [node.counters()["fetch_failed"] for node in nodes]
    for i, node in enumerate(nodes):
        # the list in force stays in force: revoked refused, fresh allowed
        assert node.call(victim) == REVOKED, f"node {i}"
        assert node.call(fresh) == OK, f"node {i}"
        assert node.call(late) == OK, f"node {i}: the outage's revocation cannot be known yet"
    # a second failed poll on every node, list still in force
    for i, node in enumerate(nodes):
        wait_until(lambda node=node, i=i: node.counters()["fetch_failed"] > failed_mid[i], POLL_S + 2, 0.1, f"a second failure on node {i}")
        assert node.call(victim) == REVOKED and node.call(fresh) == OK, f"node {i}"
    outage = time.monotonic() - down_at
    failed = [node.counters()["fetch_failed"] - b for node, b in zip(nodes, failed_before)]
    print(f"nginx down {outage:.1f} s: fetch_failed rose by {failed} on the nodes; lists kept")

    # --- 4. nginx returns: the nodes recover, the outage's revocation arrives
    ok_before = [node.counters()["fetch_ok"] for node in nodes]
    nginx.start()
    t1 = time.monotonic()
    reach = reach_times(nodes, late, t1, DEADLINE_S + 1)
    print(f"after nginx returned, the outage's revocation reached nodes after {['-' if r is None else f'{r:.2f}' for r in reach]} s")
    assert all(r is not None and r <= DEADLINE_S for r in reach), reach
    for i, node in enumerate(nodes):
        c = node.counters()
        assert c["fetch_ok"] > ok_before[i] and c["version"] == 3, (i, c)
        assert node.call(victim) == REVOKED and node.call(fresh) == OK


def sizes(cli: Path, directory: Path, entries: int, sign_env: dict[str, str] | None) -> list[int]:
    """Size of a list ``tokengate revoke`` writes after 0 (one seed), then
    ``entries`` more jti entries (random 32-hex jti, as ``tokengate mint``
    makes them, with ``exp``)."""
    path = directory / ("signed" if sign_env else "unsigned")
    extra = ["--sign-key-env", "TOKENGATE_FLEET_LIST_KEY"] if sign_env else []
    env = {**os.environ, **(sign_env or {})}
    exp = str(int(time.time()) + 3600)
    revoke(cli, path, "--jti", os.urandom(16).hex(), "--exp", exp, *extra, env=env)
    first = path.stat().st_size
    for _ in range(entries):
        revoke(cli, path, "--jti", os.urandom(16).hex(), "--exp", exp, *extra, env=env)
    return [first, path.stat().st_size]


def test_list_size_per_entry(tmp_path: Path, cli_path: Path) -> None:
    """The bytes per entry the sizing in docs/deployment.md uses."""
    n = 100
    unsigned = sizes(cli_path, tmp_path, n, None)
    signed = sizes(cli_path, tmp_path, n, {"TOKENGATE_FLEET_LIST_KEY": new_key()})
    per_unsigned = (unsigned[1] - unsigned[0]) / n
    per_signed = (signed[1] - signed[0]) / n
    print(f"\nper jti entry (with exp): unsigned {per_unsigned:.1f} B, signed {per_signed:.1f} B; one-entry list {unsigned[0]} B / {signed[0]} B")
    assert 50 <= per_unsigned <= 70, per_unsigned
    assert per_unsigned * 1.3 <= per_signed <= per_unsigned * 1.4, (per_unsigned, per_signed)
