#!/usr/bin/env python3
"""Revocation at scale (docs/figures.md, "A 1,000,000-entry revocation list"): a 1,000,000-entry list in Envoy.

A benchmark, not a test: it prints figures and compares them with the
targets; it never fails a build. Everything runs on 127.0.0.1 and is bounded
in time (``--max-seconds``, 420 by default; a full run takes about a
minute); it stops what it starts by PID (the Envoys through the harness, the
list source with SIGTERM then SIGKILL).

Usage (from the repository root, after ``cargo build --release --target
wasm32-wasip1`` and ``scripts/setup``)::

    .venv/bin/python benches/revocation_scale.py                  # 1,000,000 entries
    .venv/bin/python benches/revocation_scale.py --entries 100000 --reloads 1
    .venv/bin/python benches/revocation_scale.py --json .run/revocation-scale.json

Options: ``--entries N`` (default 1,000,000); ``--reloads N`` reloads of a
new list under load (default 3); ``--threads N`` load connections (default
4); ``--window S`` seconds of an idle latency window (default 5); ``--poll S``
the service's ``poll_interval_s`` (default 1); ``--skip-c1`` (leave out the
``--concurrency 1`` run that attributes memory to one worker); ``--json FILE``
(every figure as JSON); ``--max-seconds S``.

Set-up: the list source is ``tests/e2e/servers.py revocations --file F`` in
its own process (its work never shares a GIL with the load generator); it
re-reads the file on every poll and answers 304 to a matching
``If-None-Match``, so a new list is served from the instant the file is
atomically replaced. A list holds 95 % ``jti`` entries (26 characters, the
size of a ULID), 4.9 % ``sub`` entries (half of them with ``before``), 0.1 %
``kid`` entries, and one freshly revoked ``jti``: about 38 MB of JSON for a
million entries. Envoy runs ``--concurrency 2`` (and once ``--concurrency
1``), the filter on a ``direct_response`` route, the service polling every
``--poll`` seconds with ``timeout_ms`` 10000. Envoy buffers a callout's
response up to the runtime value ``http.async_response_buffer_limit``
(32 MiB by default), so the bootstrap raises it to 128 MiB, the service's
default ``max_bytes``: without that a 1M-entry list never arrives.

Sequence: empty list (version 1) and an idle window; the first big list
(version 2) with no load running; then ``--reloads`` cycles, each an idle
window under load followed by a new big list (new version, new fresh
``jti``) while the load keeps running; then an empty list again and a last
idle window; then the same lists at ``--concurrency 1`` for memory.

What it measures:

(a) fetch-to-enforced: from the moment the file is replaced (the source
    serves the new list) to the moment every worker refuses the fresh ``jti``:
    requests on fresh connections every few ms until the answer is 401 and
    stays 401 while every worker (Envoy's per-worker listener stats) has
    taken at least 5 connections; also the split: the source answering the
    poll (this includes waiting for the poll), the version gauge, the workers.
    Measured with no load and at each reload under load. Target <= 3 s.
(b) memory per worker VM: Envoy's VmRSS (``/proc/PID/status``) with the empty
    list and after each big list (settled). Attribution: a copy of the
    snapshot lives in each worker's filter VM, in the main thread's filter
    instance (its tick runs too) and once more in shared data; the service
    VM's linear memory keeps the high-water mark of parsing the document
    (wasm memory never shrinks). So the per-worker figure is the marginal
    cost of one more worker: delta RSS(--concurrency 2) - delta RSS
    (--concurrency 1), after the first list and after each reload. The naive
    delta RSS(c=2) / 3 filter VMs is printed beside it.
(c) request latency under a steady keep-alive load (``--threads`` Python
    threads, one ``http.client`` connection each, closed loop, every request
    timed): p50, p99 and max with the empty list, with the big list idle, and
    in the windows of the reloads (from the source answering the poll to every
    worker enforcing, plus 0.5 s), pooled over the reloads. Target: p99 while
    reloading <= 2 x idle p99. Lookup cost: worker-thread CPU per request
    (``/proc/PID/task/*/stat`` of the ``wrk:worker_*`` threads), empty list
    (before and after) vs big list: should not grow with the list.
(d) bytes per entry in a worker: the snapshot size follows from the entries
    (64-byte header, 16-byte slots at load 0.8, i.e. 20 B per entry, plus 8 B
    per ``sub`` entry with ``before``), printed beside the RSS-derived figure
    of (b) divided by the entries. Target <= 32 B per entry.

Everything else running on the machine shows in these figures, latency
most: publish figures from a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402
from harness import Envoy, bootstrap, cluster, free_port, mint, new_key, revocation_service, tokengate_filter  # noqa: E402

HOST = "127.0.0.1"
STAT = "wasmcustom.tokengate.revocation."
CLK_TCK = os.sysconf("SC_CLK_TCK")
CALLOUT_LIMIT = 128 << 20  # the service's default max_bytes


class Budget:
    """The overall time bound: every wait is cut to what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise TimeoutError(f"time budget exhausted before {what}")

    def cap(self, seconds: float) -> float:
        return max(0.1, min(seconds, self.left()))


# ------------------------------------------------------------------------ lists


def list_body(n: int, version: int, fresh_jti: str) -> tuple[bytes, int, int]:
    """The JSON document of ``n`` entries (one of them ``fresh_jti``); returns (body, entries, sub entries with before)."""
    n_kid = max(1, n // 1000)
    n_sub = n * 49 // 1000
    n_jti = n - n_kid - n_sub - 1
    parts = [f'{{"jti":"{fresh_jti}"}}']
    parts += [f'{{"jti":"01JD{i:022d}"}}' for i in range(n_jti)]
    befores = 0
    for i in range(n_sub):
        if i % 2 == 0:
            parts.append(f'{{"sub":"user-{i:08d}","before":{1_700_000_000 + i}}}')
            befores += 1
        else:
            parts.append(f'{{"sub":"user-{i:08d}"}}')
    parts += [f'{{"kid":"retired-{i:05d}"}}' for i in range(n_kid)]
    body = f'{{"version":{version},"generated_at":{int(time.time())},"entries":[\n' + ",\n".join(parts) + "\n]}"
    return body.encode(), len(parts), befores


def snapshot_bytes(entries: int, befores: int) -> int:
    """Bytes of the published snapshot (src/revocation.rs layout): header, 16-byte
    slots for n + n/4 homes (a few overflow slots not counted), 8 bytes per before."""
    return 64 + 16 * (entries + entries // 4) + 8 * befores


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------- processes


class Source:
    """tests/e2e/servers.py revocations --file F, in its own process."""

    def __init__(self, file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "e2e" / "servers.py"), "revocations", "--port", "0", "--file", str(file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # tracebacks of connections Envoy closed: noise here
            stdin=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"the list source did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def requests(self) -> list[dict[str, Any]]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            conn.request("GET", "/_control")
            return list(json.loads(conn.getresponse().read())["requests"])
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            out[name] = int(value.split()[0])
    return out["VmRSS"], out["VmHWM"]


def worker_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of Envoy's worker threads (``wrk:worker_*``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("wrk:"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def wasm_memories(pid: int) -> dict[int, tuple[int, int]]:
    """The wasm linear memories of the process: {start address: (size KiB, Rss KiB)}.

    V8 maps a wasm memory as a read-write anonymous mapping (the pages in use)
    followed by a PROT_NONE reservation of several GiB (its guard region); the
    start address stays put as the memory grows. That shape is how they are
    recognised here."""
    maps: list[tuple[int, int, str, bool, int]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":") and len(head) >= 5:
            try:
                start, end = (int(x, 16) for x in head[0].split("-"))
            except ValueError:
                continue
            maps.append((start, (end - start) // 1024, head[1], len(head) == 5, 0))
        elif maps and line.startswith("Rss:"):
            start, size, perms, anonymous, _ = maps[-1]
            maps[-1] = (start, size, perms, anonymous, int(head[1]))
    out = {}
    for here, after in zip(maps, maps[1:]):
        if here[2] == "rw-p" and here[3] and after[2] == "---p" and after[1] >= 4 << 20:
            out[here[0]] = (here[1], here[4])
    return out


def worker_vm_rss(pid: int, baseline: dict[int, tuple[int, int]], workers: int) -> list[int]:
    """Rss (KiB) added since ``baseline`` to each wasm memory but the largest
    (the main thread's VM, where the service parses the list): the workers' VMs."""
    now = wasm_memories(pid)
    grown = sorted((rss - baseline.get(start, (0, 0))[1] for start, (_, rss) in now.items()), reverse=True)
    return grown[1 : 1 + workers]


def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """VmRSS once it has stopped moving (or after ``seconds``)."""
    last = rss_kib(pid)[0]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        now = rss_kib(pid)[0]
        if abs(now - last) < 256:
            return now
        last = now
    return last


# --------------------------------------------------------------------- the gate


class Gate:
    def __init__(self, source_port: int, concurrency: int, poll_s: int, workdir: Path) -> None:
        self.key = new_key()
        filter_cfg = {
            "keys": [{"kid": "k1", "alg": "HS256", "secret": self.key}],
            "rules": [{"match": {"prefix": "/"}}],
            "revocation": {"max_stale_s": 300, "on_unavailable": "deny"},
        }
        service_cfg = {
            "cluster": "revocation_source",
            "authority": "revocations.internal",
            "path": "/v1/revocations",
            "poll_interval_s": poll_s,
            "timeout_ms": 10_000,
        }
        config = bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            http_filters=[tokengate_filter(filter_cfg)],
            clusters=[cluster("revocation_source", source_port)],
            bootstrap_extensions=[revocation_service(service_cfg)],
            access_log=False,
        )
        # Envoy buffers a callout's response body up to the runtime value
        # http.async_response_buffer_limit (default 32 MiB) and resets the call
        # beyond it; a 1M-entry list of ULID-sized jtis is about 38 MB of JSON.
        config["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {"http.async_response_buffer_limit": CALLOUT_LIMIT}}]}
        self.concurrency = concurrency
        self.envoy = Envoy(config, concurrency=concurrency, workdir=workdir, log_level="warning")
        self.pid = int(self.envoy.pid or 0)
        self.good = mint(self.key, kid="k1", sub="bench-user", ttl=3600, jti="bench-good")

    def token(self, jti: str) -> str:
        return mint(self.key, kid="k1", sub="bench-user", ttl=3600, jti=jti)

    def status(self, token: str) -> int:
        return self.envoy.request("GET", "/api", headers={"authorization": f"Bearer {token}"}).status

    def stat(self, name: str) -> int:
        return int(self.envoy.stat(STAT + name, 0) or 0)

    def worker_cx(self) -> list[int]:
        stats = self.envoy.stats()
        prefix = f"listener.127.0.0.1_{self.envoy.listener_port}.worker_"
        return [int(stats.get(f"{prefix}{i}.downstream_cx_total", 0)) for i in range(self.concurrency)]

    def wait_version(self, version: int, timeout: float) -> float:
        """Wait until the version gauge shows ``version``; return the monotonic time it was seen."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.stat("version") == version:
                return time.monotonic()
            time.sleep(0.02)
        raise TimeoutError(f"version {version} not published within {timeout:.0f} s")

    def wait_enforced(self, token: str, timeout: float, per_worker: int = 5) -> float:
        """Poll with ``token`` on fresh connections until it is refused and stays
        refused while every worker takes ``per_worker`` connections; return the
        monotonic time (response received) of the first refusal of that streak."""
        end = time.monotonic() + timeout
        streak_start: float | None = None
        cx_at_start: list[int] = []
        count = 0
        while time.monotonic() < end:
            status = self.status(token)
            if status == 401:
                if streak_start is None:
                    streak_start, cx_at_start, count = time.monotonic(), self.worker_cx(), 0
                count += 1
                if count % 4 == 0:
                    cx = self.worker_cx()
                    if min(c - s for c, s in zip(cx, cx_at_start)) >= per_worker:
                        return streak_start
            elif status == 200:
                streak_start = None
                time.sleep(0.005)
            else:
                raise RuntimeError(f"unexpected status {status} while waiting for enforcement")
        raise TimeoutError(f"not enforced on every worker within {timeout:.0f} s")


# ------------------------------------------------------------------------ load


class Load:
    """``threads`` keep-alive connections, each sending GETs back to back and
    timing every one: records (start monotonic, latency s, status)."""

    def __init__(self, gate: Gate, threads: int) -> None:
        self.gate = gate
        self.stop_flag = threading.Event()
        self.records: list[list[tuple[float, float, int]]] = [[] for _ in range(threads)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        out = self.records[i]
        headers = {"authorization": f"Bearer {self.gate.good}", "host": "bench"}
        port = int(self.gate.envoy.listener_port or 0)
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        while not self.stop_flag.is_set():
            t = time.monotonic()
            try:
                conn.request("GET", "/api", headers=headers)
                resp = conn.getresponse()
                resp.read()
                out.append((t, time.monotonic() - t, resp.status))
            except (OSError, http.client.HTTPException):
                out.append((t, time.monotonic() - t, 0))
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.close()

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)

    def window(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [r for recs in self.records for r in list(recs) if start <= r[0] < end]


def summary(records: list[tuple[float, float, int]], seconds: float) -> dict[str, Any]:
    lat = sorted(r[1] for r in records)
    if not lat:
        return {"requests": 0}
    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3
    return {
        "requests": len(lat),
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(lat[-1] * 1e3, 3),
        "mean_ms": round(statistics.fmean(lat) * 1e3, 3),
        "non_200": sum(1 for r in records if r[2] != 200),
    }


def idle_window(gate: Gate, threads: int, seconds: float) -> dict[str, Any]:
    """Latency and worker CPU per request over a steady load of ``seconds`` (after 1 s warm-up)."""
    with Load(gate, threads) as load:
        time.sleep(1.0)
        cpu0, t0 = worker_cpu_s(gate.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = worker_cpu_s(gate.pid), time.monotonic()
    out = summary(load.window(t0, t1), t1 - t0)
    out["worker_cpu_us_per_request"] = round((cpu1 - cpu0) / max(1, out["requests"]) * 1e6, 2)
    return out


def publish_and_enforce(gate: Gate, source: Source, list_file: Path, body: bytes, version: int, fresh: str, budget: Budget) -> dict[str, Any]:
    """Replace the list file; return the times (s) from then to: the source
    answering the poll with it, the version gauge, every worker refusing ``fresh``."""
    n_before = len(source.requests())
    write_atomically(list_file, body)
    t0, wall0 = time.monotonic(), time.time()
    t_pub = gate.wait_version(version, budget.cap(60))
    t_enf = gate.wait_enforced(gate.token(fresh), budget.cap(30))
    served = [r for r in source.requests()[n_before:] if r["answered"] == 200 and r["time"] >= wall0]
    t_served = (served[0]["time"] - wall0) if served else float("nan")
    return {
        "t0": t0,
        "served_after_s": round(t_served, 3),
        "published_after_s": round(t_pub - t0, 3),
        "enforced_all_workers_after_s": round(t_enf - t0, 3),
        "service_and_workers_s": round(t_enf - t0 - t_served, 3),
    }


def memory_run(budget: Budget, tmp: Path, concurrency: int, poll_s: int, lists: list[tuple[bytes, int, str]]) -> dict[str, Any]:
    """Envoy at ``concurrency`` on the empty list, then each list in turn (no load); VmRSS after each."""
    list_file = tmp / f"list-c{concurrency}.json"
    write_atomically(list_file, b'{"version":1,"entries":[]}')
    source = Source(list_file)
    gate = None
    try:
        gate = Gate(source.port, concurrency, poll_s, tmp / f"envoy-c{concurrency}")
        gate.wait_version(1, budget.cap(20))
        time.sleep(1.0)
        empty = settle_rss(gate.pid)
        steps = []
        for body, version, fresh in lists:
            budget.check(f"list version {version} at concurrency {concurrency}")
            publish_and_enforce(gate, source, list_file, body, version, fresh, budget)
            time.sleep(1.0)
            steps.append(settle_rss(gate.pid, 4.0))
        return {"rss_empty_kib": empty, "rss_steps_kib": steps, "delta_steps_kib": [x - empty for x in steps], "hwm_kib": rss_kib(gate.pid)[1]}
    finally:
        if gate is not None:
            gate.envoy.stop()
        source.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--poll", type=int, default=1)
    parser.add_argument("--skip-c1", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--max-seconds", type=float, default=420.0)
    args = parser.parse_args(argv)
    budget = Budget(args.max_seconds)
    if not harness.WASM_PATH.exists():
        print(f"missing {harness.WASM_PATH}: cargo build --release --target wasm32-wasip1", file=sys.stderr)
        return 2
    reloads = max(1, args.reloads)

    results: dict[str, Any] = {"entries_requested": args.entries, "poll_interval_s": args.poll, "threads": args.threads, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    print(f"revocation_scale: {args.entries:,} entries, poll_interval_s {args.poll}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)

    # Version 1 is the empty list; 2 the first 1M list; 3.. the reloads; then an empty list again.
    t = time.monotonic()
    lists: list[tuple[bytes, int, str]] = []
    for version in range(2, 3 + reloads):
        fresh = f"fresh-v{version}-" + secrets.token_hex(6)
        body, entries, befores = list_body(args.entries, version, fresh)
        lists.append((body, version, fresh))
    snap = snapshot_bytes(entries, befores)
    results.update(entries=entries, sub_with_before=befores, list_json_bytes=len(lists[0][0]), snapshot_bytes=snap)
    print(f"lists: {len(lists)} of {entries:,} entries ({befores:,} sub with before), {len(lists[0][0]) / 1e6:.1f} MB of JSON each, built in {time.monotonic() - t:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="tokengate-revscale-") as tmpdir:
        tmp = Path(tmpdir)
        list_file = tmp / "list.json"
        write_atomically(list_file, b'{"version":1,"entries":[]}')
        source = Source(list_file)
        gate = None
        try:
            gate = Gate(source.port, 2, args.poll, tmp / "envoy-c2")
            gate.wait_version(1, budget.cap(20))
            time.sleep(1.0)

            # (c) idle, empty list
            budget.check("the empty-list window")
            results["idle_empty"] = idle_window(gate, args.threads, args.window)
            print(f"idle, empty list:    {results['idle_empty']}", flush=True)
            rss_empty = settle_rss(gate.pid)
            vm_empty = wasm_memories(gate.pid)

            # (a) fetch-to-enforced, no load running
            budget.check("loading the first 1M list")
            body, version, fresh = lists[0]
            fte = publish_and_enforce(gate, source, list_file, body, version, fresh, budget)
            fte.pop("t0")
            results["fetch_to_enforced"] = fte
            assert gate.stat("entries") == entries, (gate.stat("entries"), entries)
            assert gate.status(gate.good) == 200
            print(f"(a) fetch-to-enforced: {fte}", flush=True)
            time.sleep(1.0)
            rss_steps = [settle_rss(gate.pid, 4.0)]
            vm_steps = [worker_vm_rss(gate.pid, vm_empty, 2)]

            # (c) reload cycles under load: an idle window with the 1M list, then a new 1M list
            idle_recs: list[tuple[float, float, int]] = []
            reload_recs: list[tuple[float, float, int]] = []
            idle_s = reload_s = 0.0
            cycles = []
            idle_cpu = idle_n = 0.0
            for body, version, fresh in lists[1:]:
                budget.check(f"reload to version {version}")
                with Load(gate, args.threads) as load:
                    time.sleep(1.0)
                    cpu0, i0 = worker_cpu_s(gate.pid), time.monotonic()
                    time.sleep(max(1.0, args.window * 0.6))
                    cpu1, i1 = worker_cpu_s(gate.pid), time.monotonic()
                    fte = publish_and_enforce(gate, source, list_file, body, version, fresh, budget)
                    time.sleep(1.0)
                t0 = fte.pop("t0")
                start = t0 + (fte["served_after_s"] if fte["served_after_s"] == fte["served_after_s"] else 0.0)
                end = t0 + fte["enforced_all_workers_after_s"] + 0.5
                idle_w, reload_w = load.window(i0, i1), load.window(start, end)
                idle_recs += idle_w
                reload_recs += reload_w
                idle_s += i1 - i0
                reload_s += end - start
                idle_cpu += cpu1 - cpu0
                idle_n += len(idle_w)
                cycle = {"version": version, **fte, "idle": summary(idle_w, i1 - i0), "reload": summary(reload_w, end - start)}
                cycles.append(cycle)
                print(f"reload to v{version}: enforced after {fte['enforced_all_workers_after_s']} s; idle p99 {cycle['idle'].get('p99_ms')} ms, reload p99 {cycle['reload'].get('p99_ms')} ms max {cycle['reload'].get('max_ms')} ms", flush=True)
                rss_steps.append(settle_rss(gate.pid, 4.0))
                vm_steps.append(worker_vm_rss(gate.pid, vm_empty, 2))
            results["cycles"] = cycles
            results["idle_1m"] = summary(idle_recs, idle_s)
            results["idle_1m"]["worker_cpu_us_per_request"] = round(idle_cpu / max(1, idle_n) * 1e6, 2)
            results["reload"] = summary(reload_recs, reload_s)
            results["reload"]["window_s"] = round(reload_s, 3)

            # (c) the empty list again: lookup cost does not depend on the list
            budget.check("the empty list again")
            version = lists[-1][1] + 1
            write_atomically(list_file, f'{{"version":{version},"entries":[]}}'.encode())
            gate.wait_version(version, budget.cap(30))
            time.sleep(1.0)
            results["idle_empty_after"] = idle_window(gate, args.threads, args.window)
            print(f"idle, empty again:   {results['idle_empty_after']}", flush=True)
            results["memory_c2"] = {
                "rss_empty_kib": rss_empty,
                "rss_steps_kib": rss_steps,
                "delta_steps_kib": [x - rss_empty for x in rss_steps],
                "hwm_kib": rss_kib(gate.pid)[1],
                "worker_vm_added_rss_steps_kib": vm_steps,
                "wasm_memories_mib": sorted((round(size / 1024, 1), round(rss / 1024, 1)) for size, rss in wasm_memories(gate.pid).values()),
            }
        finally:
            if gate is not None:
                gate.envoy.stop()
            source.stop()

        if not args.skip_c1 and budget.left() > 60:
            results["memory_c1"] = memory_run(budget, tmp, 1, args.poll, lists)
            print(f"(b) RSS c=1: {results['memory_c1']}", flush=True)

    results["loadavg_end"] = os.getloadavg()
    report(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(r: dict[str, Any]) -> None:
    n = r["entries"]
    out = ["", f"== revocation at scale: {n:,} entries ({r['list_json_bytes'] / 1e6:.1f} MB of JSON), {r['cpus']} CPUs, load average {r['loadavg_start'][0]:.2f} at start, {r.get('loadavg_end', [float('nan')])[0]:.2f} at end =="]
    fte = r["fetch_to_enforced"]
    worst = max([fte["enforced_all_workers_after_s"]] + [c["enforced_all_workers_after_s"] for c in r.get("cycles", [])])
    out.append(
        f"(a) fetch-to-enforced on every worker, no load: {fte['enforced_all_workers_after_s']:.2f} s "
        f"(the source answered the poll after {fte['served_after_s']:.2f} s; version published after {fte['published_after_s']:.2f} s; "
        f"fetch + parse + build + publish + worker pick-up {fte['service_and_workers_s']:.2f} s)"
    )
    for c in r.get("cycles", []):
        out.append(f"    reload under load to v{c['version']}: {c['enforced_all_workers_after_s']:.2f} s (served after {c['served_after_s']:.2f} s, service + workers {c['service_and_workers_s']:.2f} s)")
    out.append(f"    worst {worst:.2f} s; target <= 3 s: {'ok' if worst <= 3 else 'MISSED'}")
    m2 = r["memory_c2"]
    out.append(f"(b) Envoy VmRSS, --concurrency 2: empty list {mib(m2['rss_empty_kib'])}; after the first list {mib(m2['rss_steps_kib'][0])} (+{mib(m2['delta_steps_kib'][0])}); after each reload " + ", ".join(mib(x) for x in m2["rss_steps_kib"][1:]) + f"; peak {mib(m2['hwm_kib'])}")
    per_worker: list[float] = []
    if "memory_c1" in r:
        m1 = r["memory_c1"]
        out.append(f"    --concurrency 1: empty list {mib(m1['rss_empty_kib'])}; after each list " + ", ".join(f"+{mib(x)}" for x in m1["delta_steps_kib"]))
        per_worker = [(a - b) * 1024 for a, b in zip(m2["delta_steps_kib"], m1["delta_steps_kib"])]
        out.append("    one more worker VM (delta c=2 - delta c=1): " + ", ".join(f"{w / 2**20:.1f} MiB = {w / n:.1f} B/entry" for w in per_worker) + "  (first list, then after each reload)")
    vm = [v for v in m2.get("worker_vm_added_rss_steps_kib", []) if v]
    if vm:
        out.append("    added to each worker VM's linear memory (smaps; the main thread's VM, which parses the list, left out): " + "; ".join(" / ".join(mib(x) for x in step) for step in vm) + "  (first list, then after each reload)")
        out.append(f"    all wasm memories at the end (size, Rss MiB): {m2['wasm_memories_mib']}")
    out.append(f"    naive: delta c=2 / 3 filter VMs (2 workers + the main-thread filter instance; shared data and the service VM counted in) = {m2['delta_steps_kib'][0] / 3 / 1024:.1f} MiB = {m2['delta_steps_kib'][0] * 1024 / 3 / n:.1f} B/entry")
    out.append(f"(d) snapshot held by each worker: {r['snapshot_bytes'] / 2**20:.1f} MiB = {r['snapshot_bytes'] / n:.1f} B/entry (16 B slots at load 0.8 = 20 B per entry, +8 B per sub with before; {r['sub_with_before']:,} of them)")
    if vm:
        worst_vm_b = max(max(step) for step in vm) * 1024 / n
        out.append(f"    RSS-derived per worker VM (smaps): first list {max(vm[0]) * 1024 / n:.1f} B/entry, worst after reloads {worst_vm_b:.1f} B/entry; target <= 32 B/entry: {'ok' if worst_vm_b <= 32 else 'MISSED'}")
    if per_worker:
        out.append(f"    RSS-derived per worker (c=2 - c=1, noisier: the service VM's high-water differs between runs): first list {per_worker[0] / n:.1f} B/entry, worst {max(per_worker) / n:.1f} B/entry")
    e, m, rl, e2 = r["idle_empty"], r["idle_1m"], r["reload"], r["idle_empty_after"]
    out.append(f"(c) latency, {r['threads']} keep-alive connections (Python http.client, closed loop):")
    for name, w in (("empty list", e), (f"{n:,} entries, idle", m), (f"{n:,} entries, reloading", rl), ("empty list again", e2)):
        out.append(f"    {name:28s} {w['requests']:7d} req  {w['rps']:8.1f} req/s  p50 {w['p50_ms']:.3f} ms  p99 {w['p99_ms']:.3f} ms  max {w['max_ms']:.1f} ms  non-200 {w['non_200']}" + (f"  worker CPU {w['worker_cpu_us_per_request']} us/req" if "worker_cpu_us_per_request" in w else ""))
    ratio = rl["p99_ms"] / m["p99_ms"] if m.get("p99_ms") else float("nan")
    out.append(f"    p99 while reloading = {ratio:.2f} x idle p99 (windows pooled over {len(r.get('cycles', []))} reloads, {rl['window_s']} s in all); target <= 2x: {'ok' if ratio <= 2 else 'MISSED'}")
    base = (e["worker_cpu_us_per_request"] + e2["worker_cpu_us_per_request"]) / 2
    out.append(f"    lookup cost: worker CPU per request, empty list {e['worker_cpu_us_per_request']} / {e2['worker_cpu_us_per_request']} us (before / after) vs {n:,} entries {m['worker_cpu_us_per_request']} us ({m['worker_cpu_us_per_request'] - base:+.1f} us)")
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
