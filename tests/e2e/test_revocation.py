"""Revocation end to end in a real Envoy (docs/revocation.md,
the filter's `revocation` field in docs/configuration.md, docs/telemetry.md).

Every Envoy here runs with ``--concurrency 2`` (two workers, each with its own
filter VM) beside the singleton service ``tokengate-revocations``, which polls
a ``RevocationSource`` on 127.0.0.1. What is shown:

* a revocation made at the source (by ``jti``, by ``sub`` + ``before``, by
  ``kid``) is refused on both workers within ``poll_interval_s`` + 1 s,
  measured from the moment the source serves the new list; unrevoked tokens
  keep passing; ``static`` entries apply with or without a source;
* every fault (source down at start or later, 500, a dropped connection, a
  source slower than ``timeout_ms``, garbage, truncated JSON, a wrong shape, a
  body over ``max_bytes`` or beyond Envoy's 32 MiB callout buffer, a lower
  version, a bad signature) keeps the list in force, raises its counter, and
  leaves the service polling; ``max_stale_s`` then ``on_unavailable`` decide once the
  list is too old; a 304 counts as a fresh fetch;
* the gauges ``entries``, ``version`` and ``age_s`` show the published list.

Which worker took a request is read from Envoy's per-worker listener stats
(``listener.<addr>.worker_<n>.downstream_cx_total``): every request here goes
on a fresh connection, and the kernel spreads new connections over the
workers.

Run: ``.venv/bin/python -m pytest tests/e2e/test_revocation.py -q`` (``-s``
prints the measured enforcement times).
"""

from __future__ import annotations

import base64
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest

import harness
from harness import Envoy, bootstrap, cluster, free_port, mint, new_key, revocation_service, sign_list, tokengate_filter, wait_until
from servers import RevocationSource

POLL_S = 1  # poll_interval_s of every service here
DEADLINE_S = POLL_S + 1  # docs/revocation.md: enforced by every worker within poll_interval_s + 1 s
TIMEOUT_MS = 500  # timeout_ms of the services here
MAX_BYTES = 8192  # max_bytes of the shared service
STAT = "wasmcustom.tokengate.revocation."
STATIC_JTI = "static-gone"  # in every filter's revocation.static
ALWAYS_JTI = "always-gone"  # in every list the shared service publishes


# ----------------------------------------------------------------------- helpers


class Gate:
    """One Envoy (two workers) with tokengate and, unless ``service`` is False,
    the revocation service polling ``source_port`` on 127.0.0.1.

    Two HS256 keys, ``k1`` and ``k2``; one rule letting any valid token through
    to a ``direct_response`` 200."""

    def __init__(
        self,
        workdir: Path,
        source_port: int,
        *,
        max_stale_s: int = 60,
        on_unavailable: str = "deny",
        max_bytes: int | None = MAX_BYTES,
        verify_key: str | None = None,
        service: bool = True,
    ) -> None:
        self.keys = {"k1": new_key(), "k2": new_key()}
        self.source_port = source_port
        self.max_stale_s = max_stale_s
        filter_cfg = {
            "keys": [{"kid": kid, "alg": "HS256", "secret": secret} for kid, secret in self.keys.items()],
            "rules": [{"match": {"prefix": "/"}}],
            "revocation": {"max_stale_s": max_stale_s, "on_unavailable": on_unavailable, "static": [{"jti": STATIC_JTI}]},
        }
        service_cfg: dict[str, Any] = {
            "cluster": "revocation_source",
            "authority": "revocations.internal",
            "path": "/v1/revocations",
            "poll_interval_s": POLL_S,
            "timeout_ms": TIMEOUT_MS,
        }
        if max_bytes is not None:
            service_cfg["max_bytes"] = max_bytes
        if verify_key is not None:
            service_cfg["verify_key"] = {"alg": "HS256", "secret": verify_key}
        config = bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            http_filters=[tokengate_filter(filter_cfg)],
            clusters=[cluster("revocation_source", source_port)],
            bootstrap_extensions=[revocation_service(service_cfg)] if service else [],
        )
        self.envoy = Envoy(config, workdir=workdir, concurrency=2)

    def stop(self) -> None:
        self.envoy.stop()

    # ---- tokens and decisions

    def token(self, kid: str = "k1", **claims: Any) -> str:
        claims.setdefault("sub", "alice")
        return mint(self.keys[kid], kid=kid, **claims)

    def call(self, token: str) -> tuple[int, str | None]:
        """(status, reason) of one GET with ``token``, on a fresh connection."""
        r = self.envoy.request("GET", "/api", headers={"authorization": f"Bearer {token}"})
        if r.status == 200:
            return 200, None
        try:
            return r.status, r.json().get("reason")
        except ValueError:
            return r.status, f"<not JSON: {r.body[:80]!r}>"

    # ---- stats

    def stat(self, name: str) -> int:
        return int(self.envoy.stat(STAT + name, 0) or 0)

    def counters(self) -> dict[str, int]:
        stats = self.envoy.stats()
        names = ("fetch_ok", "fetch_not_modified", "fetch_failed", "rollback_refused", "entries", "version", "age_s")
        return {n: int(stats.get(STAT + n, 0) or 0) for n in names}

    def worker_cx(self) -> tuple[int, int]:
        """Connections accepted so far by worker 0 and worker 1 on the listener."""
        stats = self.envoy.stats()
        prefix = f"listener.127.0.0.1_{self.envoy.listener_port}.worker_"
        return int(stats.get(prefix + "0.downstream_cx_total", 0)), int(stats.get(prefix + "1.downstream_cx_total", 0))

    def wait_counter(self, name: str, above: int, timeout: float = 6.0) -> int:
        """Wait until counter ``name`` exceeds ``above``; return its value."""
        return int(wait_until(lambda: (lambda v: v if v > above else 0)(self.stat(name)), timeout, 0.1, f"{name} > {above}"))

    # ---- the list at the workers

    def expect_on_both_workers(self, expected: dict[str, tuple[int, str | None]], min_per_worker: int = 3, max_rounds: int = 40) -> None:
        """Send every token of ``expected`` (token → (status, reason)) round
        after round, each on a fresh connection, until both workers have
        taken at least ``min_per_worker`` connections; every answer must be
        the expected one."""
        start = self.worker_cx()
        seen = (0, 0)
        for _ in range(max_rounds):
            for token, want in expected.items():
                got = self.call(token)
                assert got == want, f"got {got}, expected {want} (token sub/jti/kid: {describe(token)})"
            now = self.worker_cx()
            seen = (now[0] - start[0], now[1] - start[1])
            if min(seen) >= min_per_worker:
                return
        pytest.fail(f"the connections did not reach both workers: {seen} new connections on workers 0/1")

    def wait_published(self, version: int, timeout: float = 6.0) -> None:
        """Wait until the service published ``version``, then until every
        worker's 250 ms tick has had the chance to copy it."""
        wait_until(lambda: self.stat("version") == version, timeout, 0.05, f"version gauge = {version}")
        time.sleep(0.6)


def describe(token: str) -> str:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"kid={header.get('kid')} sub={claims.get('sub')} jti={claims.get('jti')} iat={claims.get('iat')}"


def hs384(document: dict[str, Any], key_b64: str) -> str:
    """A list signed with HS384 under a 32-byte key (PyJWT warns about the key length: expected here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sign_list(document, key_b64, alg="HS384")


def doc(version: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": version, "generated_at": int(time.time()), "entries": entries}


OK = (200, None)
REVOKED = (401, "revoked")
UNAVAILABLE = (503, "revocation_unavailable")


def measure_enforcement(gate: Gate, t0: float, revoked: list[str], kept: list[str], before: tuple[int, str | None] = OK) -> list[float]:
    """From ``t0`` (the source serves the new list) to ``t0 + DEADLINE_S``, ask
    with each revoked token on fresh connections: return, per token, the time
    from ``t0`` to its first refusal (received). Until then a token gets
    ``before`` (the answer under the previous list). Then check, on both
    workers, that every revoked token is refused and every kept one passes."""
    first: list[float | None] = [None] * len(revoked)
    deadline = t0 + DEADLINE_S
    while time.monotonic() < deadline:
        for i, token in enumerate(revoked):
            got = gate.call(token)
            at = time.monotonic() - t0
            assert got in (before, REVOKED), got
            if got == REVOKED and first[i] is None:
                first[i] = at
        for token in kept:
            assert gate.call(token) in (before, OK), describe(token)
    late = [describe(t) for t, f in zip(revoked, first) if f is None]
    assert not late, f"not refused within poll_interval_s + 1 s = {DEADLINE_S} s: {late}"
    gate.expect_on_both_workers({**{t: REVOKED for t in revoked}, **{t: OK for t in kept}})
    return [f for f in first if f is not None]


# ---------------------------------------------------------------------- fixtures


class SharedGate(Gate):
    """The module's Gate and its source; ``publish`` raises the version."""

    def __init__(self, workdir: Path) -> None:
        self.source = RevocationSource()
        self.version = 1
        self.source.set_document(doc(1, [{"jti": ALWAYS_JTI}]))
        super().__init__(workdir, self.source.port)
        self.wait_published(1, timeout=10)

    def publish(self, entries: list[dict[str, Any]]) -> int:
        """Serve a new version holding ``entries`` plus the always-revoked jti; wait until it is in force."""
        self.version += 1
        self.source.set(
            document=doc(self.version, [{"jti": ALWAYS_JTI}, *entries]), etag="auto", status=200, delay_s=0.0, drop=False, content_type="application/json"
        )
        self.wait_published(self.version)
        return self.version

    def assert_kept(self, extra: dict[str, tuple[int, str | None]] | None = None) -> None:
        """The list in force is kept: its revoked token refused, an unrevoked
        one passing, a static entry refused, on both workers; the gauges unchanged."""
        expected = {
            self.token(jti=ALWAYS_JTI): REVOKED,
            self.token(jti=STATIC_JTI): REVOKED,
            self.token(sub="bob"): OK,
            **(extra or {}),
        }
        self.expect_on_both_workers(expected)
        assert self.stat("version") == self.version


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[SharedGate]:
    gate = SharedGate(tmp_path_factory.mktemp("revocation-shared"))
    try:
        yield gate
    finally:
        gate.stop()
        gate.source.stop()


@pytest.fixture
def healthy(shared: SharedGate) -> SharedGate:
    """The shared gate with a fresh healthy list in force (a new version)."""
    shared.publish([])
    return shared


# ---------------------------------------------------------------- propagation


def test_revocation_by_jti_sub_and_kid_reaches_both_workers_in_time(healthy: SharedGate) -> None:
    gate = healthy
    now = int(time.time())
    before = now - 100
    victim_jti = gate.token(jti="victim-1")
    victim_old = gate.token(sub="mallory", iat=before - 100)
    victim_no_iat = gate.token(sub="mallory", iat=None)
    mallory_at_before = gate.token(sub="mallory", iat=before)  # issued at `before`, not before it
    mallory_new = gate.token(sub="mallory", iat=now)
    victim_k2 = gate.token(kid="k2", sub="carol")
    victim_k2_other = gate.token(kid="k2", sub="dave", jti="other")
    keeper = gate.token(sub="alice")
    keeper_k1 = gate.token(sub="carol")  # same subject as a k2 victim, other key
    for t in (victim_jti, victim_old, victim_no_iat, victim_k2, victim_k2_other):
        assert gate.call(t) == OK, describe(t)

    entries: list[dict[str, Any]] = []
    timings: dict[str, list[float]] = {}
    phases = [
        ("jti", {"jti": "victim-1"}, [victim_jti], [keeper, mallory_new]),
        ("sub+before", {"sub": "mallory", "before": before}, [victim_old, victim_no_iat], [keeper, mallory_at_before, mallory_new]),
        ("kid", {"kid": "k2"}, [victim_k2, victim_k2_other], [keeper, keeper_k1, mallory_new]),
    ]
    revoked_so_far: list[str] = []
    for name, entry, revoked, kept in phases:
        entries.append(entry)
        gate.version += 1
        gate.source.set_document(doc(gate.version, [{"jti": ALWAYS_JTI}, *entries]))
        t0 = time.monotonic()  # from here the source serves the new list
        timings[name] = measure_enforcement(gate, t0, revoked, kept)
        revoked_so_far += revoked
        # earlier revocations still hold
        gate.expect_on_both_workers({t: REVOKED for t in revoked_so_far}, min_per_worker=1)
        assert gate.stat("version") == gate.version
    print("\nfetch-to-refused (s, first refusal per token):", {k: [round(x, 3) for x in v] for k, v in timings.items()})


def test_static_entries_apply_beside_the_fetched_list(healthy: SharedGate) -> None:
    healthy.expect_on_both_workers({healthy.token(jti=STATIC_JTI): REVOKED, healthy.token(jti="not-static"): OK})
    # the static entry is not counted in the entries gauge (only ALWAYS_JTI is published)
    assert healthy.stat("entries") == 1


def test_gauges_show_the_published_list(healthy: SharedGate) -> None:
    ok_before = healthy.stat("fetch_ok")
    entries = (
        [{"jti": f"g-{i}"} for i in range(30)]
        + [{"sub": f"u-{i}", "before": 1000 + i} for i in range(10)]
        + [{"sub": "nobody-anymore"}]
        + [{"kid": f"old-{i}"} for i in range(5)]
    )
    version = healthy.publish(entries)
    c = healthy.counters()
    assert c["version"] == version
    assert c["entries"] == len(entries) + 1  # + ALWAYS_JTI; the static entry is not counted
    assert c["fetch_ok"] > ok_before
    assert c["age_s"] <= POLL_S + 1
    prom = healthy.envoy.prometheus_samples()
    assert prom["tokengate_revocation_version{}"] == version
    assert prom["tokengate_revocation_entries{}"] == len(entries) + 1
    healthy.expect_on_both_workers(
        {
            healthy.token(jti="g-29"): REVOKED,
            healthy.token(sub="u-3", iat=1000): REVOKED,
            healthy.token(sub="u-3"): OK,
            healthy.token(sub="nobody-anymore"): REVOKED,  # a sub entry without before: every token of the subject
        }
    )


# --------------------------------------------------------------------- faults


def test_status_500_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    healthy.source.set(status=500)
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept()
    healthy.wait_counter("fetch_failed", failed + 1)  # and again on the next poll


def test_dropped_connection_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    healthy.source.set(drop=True, document=doc(healthy.version + 1, []))
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept()


def test_source_slower_than_timeout_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    # A new version that would un-revoke ALWAYS_JTI and revoke "slow-1", served after the timeout.
    healthy.source.set(delay_s=TIMEOUT_MS / 1000 + 1.0, document=doc(healthy.version + 1, [{"jti": "slow-1"}]))
    t0 = time.monotonic()
    healthy.wait_counter("fetch_failed", failed, timeout=8)
    healthy.assert_kept({healthy.token(jti="slow-1"): OK})
    assert time.monotonic() - t0 < POLL_S + 1 + TIMEOUT_MS / 1000 + 1.5
    assert healthy.stat("version") == healthy.version


def test_garbage_body_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    healthy.source.set(body=b"\x00\xffthis is not a revocation list\n<html>", content_type="text/html")
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept()


def test_truncated_json_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    body = json.dumps(doc(healthy.version + 1, [{"jti": "trunc-1"}, {"jti": "trunc-2"}])).encode()
    healthy.source.set(body=body[: len(body) // 2])
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept({healthy.token(jti="trunc-1"): OK})


def test_wrong_shape_keeps_the_list(healthy: SharedGate) -> None:
    failed = healthy.stat("fetch_failed")
    # valid JSON, refused shapes: an entry with two kinds; then no version
    healthy.source.set(document=doc(healthy.version + 1, [{"jti": "shape-1", "sub": "x"}]))
    healthy.wait_counter("fetch_failed", failed)
    healthy.source.set(document={"entries": [{"jti": "shape-1"}]})
    healthy.wait_counter("fetch_failed", failed + 1)
    healthy.assert_kept({healthy.token(jti="shape-1"): OK})


def test_body_over_max_bytes_keeps_the_list(healthy: SharedGate) -> None:
    failed, ok = healthy.stat("fetch_failed"), healthy.stat("fetch_ok")
    entries = [{"jti": "big-1"}] + [{"jti": f"pad-{i:06d}"} for i in range(MAX_BYTES // 16)]
    big = json.dumps(doc(healthy.version + 1, entries)).encode()
    assert len(big) > MAX_BYTES
    healthy.source.set(body=big)
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept({healthy.token(jti="big-1"): OK})
    assert healthy.stat("fetch_ok") == ok
    # exactly max_bytes is accepted
    body = json.dumps(doc(healthy.version + 1, [{"jti": ALWAYS_JTI}, {"jti": "big-1"}])).encode()
    healthy.source.set(body=body + b" " * (MAX_BYTES - len(body)))
    healthy.version += 1
    healthy.wait_published(healthy.version)
    healthy.assert_kept({healthy.token(jti="big-1"): REVOKED})


def test_lower_version_is_refused_and_equal_version_changes_nothing(healthy: SharedGate) -> None:
    rollback = healthy.stat("rollback_refused")
    # an older list without ALWAYS_JTI: it would un-revoke it
    healthy.source.set(document=doc(healthy.version - 1, [{"jti": "rollback-1"}]))
    healthy.wait_counter("rollback_refused", rollback)
    healthy.assert_kept({healthy.token(jti="rollback-1"): OK})
    healthy.wait_counter("rollback_refused", rollback + 1)  # refused again at every poll
    # the same version with other entries (ALWAYS_JTI dropped, same-1 added) is
    # refused as a failed fetch and logged at warn: a publisher that changed
    # the list without raising the version is neither silently ignored nor
    # allowed to overwrite the list in force
    ok = healthy.stat("fetch_ok")
    healthy.source.set(document=doc(healthy.version, [{"jti": "same-1"}]))
    healthy.envoy.wait_for_log(rf"\[warning\].*version {healthy.version} holds other entries than the list in force")
    # from here every poll gets the equal version: a failed fetch each time, never a rollback
    rollback, failed = healthy.stat("rollback_refused"), healthy.stat("fetch_failed")
    healthy.wait_counter("fetch_failed", failed)
    healthy.assert_kept({healthy.token(jti="same-1"): OK})
    assert healthy.stat("fetch_ok") == ok
    assert healthy.stat("rollback_refused") == rollback
    # the same version with the same entries (another body: generated_at moved on) changes nothing and is a good fetch
    time.sleep(1)
    healthy.source.set(document=doc(healthy.version, [{"jti": ALWAYS_JTI}]))
    failed = healthy.stat("fetch_failed")
    healthy.wait_counter("fetch_ok", ok)
    healthy.assert_kept()
    assert healthy.stat("fetch_failed") <= failed + 1  # at most the poll already under way


def test_body_beyond_envoys_callout_buffer_keeps_the_list_and_the_polling(tmp_path: Path, wasm_path: Path) -> None:
    """Envoy buffers a callout's response body up to 32 MiB (runtime
    ``http.async_response_buffer_limit``) and resets the call beyond it. With
    ``max_bytes`` at its default (128 MiB) such a list is not over
    ``max_bytes``: it loads, or the fetch fails; either way the list in force
    is kept (or replaced by it), and the service keeps polling."""
    source = RevocationSource()
    source.set_document(doc(1, [{"jti": ALWAYS_JTI}]))
    gate = Gate(tmp_path, source.port, max_bytes=None)
    try:
        gate.wait_published(1, timeout=10)
        entries = [{"jti": ALWAYS_JTI}] + [{"jti": f"01JD{i:022d}"} for i in range(1_000_000)]
        big = json.dumps(doc(2, entries), separators=(",", ":")).encode()
        assert (32 << 20) < len(big) < (128 << 20)
        failed = gate.stat("fetch_failed")
        source.set(body=big)
        t0 = time.monotonic()
        while not (gate.stat("version") == 2 or gate.stat("fetch_failed") > failed):
            if time.monotonic() - t0 > 15:
                time.sleep(0.5)  # Envoy writes its log out every 100 ms
                crash = re.findall(r".*(?:panicked|exceeded|failed:).*", gate.envoy.log_text())
                pytest.fail(
                    f"a {len(big)}-byte list neither loaded nor counted as fetch_failed within 15 s "
                    f"(fetch_ok {gate.stat('fetch_ok')}, fetch_failed {gate.stat('fetch_failed')}); Envoy log:\n" + "\n".join(crash[-6:])
                )
            time.sleep(0.1)
        gate.expect_on_both_workers({gate.token(jti=ALWAYS_JTI): REVOKED, gate.token(): OK}, min_per_worker=1)
        # the service keeps polling: a later, small list is in force within poll_interval_s + 1 s
        source.set_document(doc(3, [{"jti": ALWAYS_JTI}, {"jti": "after-big"}]))
        measure_enforcement(gate, time.monotonic(), [gate.token(jti="after-big")], [gate.token()])
        assert gate.stat("version") == 3
    finally:
        gate.stop()
        source.stop()


# ------------------------------------------------- signed lists (verify_key)


def test_signed_list_bad_signature_and_unsigned_are_refused(tmp_path: Path, wasm_path: Path) -> None:
    list_key = new_key()
    source = RevocationSource()
    source.set(body=sign_list(doc(1, [{"jti": ALWAYS_JTI}]), list_key), content_type="application/jwt")
    gate = Gate(tmp_path, source.port, verify_key=list_key)
    try:
        gate.wait_published(1, timeout=10)
        kept = {gate.token(jti=ALWAYS_JTI): REVOKED, gate.token(jti="would-be"): OK, gate.token(): OK}
        gate.expect_on_both_workers(kept)
        v2 = doc(2, [{"jti": "would-be"}])  # would un-revoke ALWAYS_JTI
        payload = json.dumps(v2).encode()
        faults = {
            "signed with another key": sign_list(v2, new_key()),
            "unsigned JSON": payload.decode(),
            "typ JWT": jwt.encode(v2, base64.b64decode(list_key), algorithm="HS256", headers={"typ": "JWT"}),
            "alg HS384": hs384(v2, list_key),
            "signature truncated": sign_list(v2, list_key)[:-4],
        }
        for what, body in faults.items():
            failed = gate.stat("fetch_failed")
            source.set(body=body)
            gate.wait_counter("fetch_failed", failed)
            assert gate.stat("version") == 1, what
            gate.expect_on_both_workers(kept, min_per_worker=1)
        # the good list is taken
        source.set(body=sign_list(v2, list_key))
        gate.wait_published(2)
        gate.expect_on_both_workers({gate.token(jti=ALWAYS_JTI): OK, gate.token(jti="would-be"): REVOKED})
    finally:
        gate.stop()
        source.stop()


# ------------------------------------------------- no source, stale, 304


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_source_down_at_start(tmp_path: Path, wasm_path: Path, policy: str) -> None:
    port = free_port()  # nothing listens here yet
    gate = Gate(tmp_path, port, on_unavailable=policy)
    source = None
    try:
        gate.wait_counter("fetch_failed", 0, timeout=8)
        assert gate.stat("fetch_ok") == 0
        unrevoked = gate.token(jti="live-1")
        expected = {
            unrevoked: UNAVAILABLE if policy == "deny" else OK,
            gate.token(jti=STATIC_JTI): REVOKED,  # static entries apply without a source
            gate.token(kid="k2"): UNAVAILABLE if policy == "deny" else OK,
        }
        gate.expect_on_both_workers(expected)
        r = gate.envoy.request("GET", "/api", headers={"authorization": f"Bearer {unrevoked}"})
        if policy == "deny":
            assert r.status == 503
            assert r.json()["error"] == "temporarily_unavailable"
            assert r.header("content-type") == "application/json"
        # a token failing an earlier check gets that check's reason, not 503
        forged = unrevoked[:-4] + ("AAAA" if not unrevoked.endswith("AAAA") else "QQQQ")
        assert gate.call(forged) == (401, "bad_signature")
        assert gate.call(gate.token(exp=int(time.time()) - 3600)) == (401, "expired")
        # the source comes up: the list is in force within poll_interval_s + 1 s
        source = RevocationSource(port=port)
        source.set_document(doc(1, [{"jti": "live-1"}]))
        t0 = time.monotonic()
        took = measure_enforcement(gate, t0, [unrevoked], [gate.token(jti="live-2")], before=expected[unrevoked])
        print(f"\nsource up ({policy}): list enforced after {took[0]:.3f} s")
        assert gate.stat("fetch_ok") >= 1
    finally:
        gate.stop()
        if source is not None:
            source.stop()


@pytest.fixture(scope="module")
def stale_gate(tmp_path_factory: pytest.TempPathFactory, wasm_path: Path) -> Iterator[tuple[Gate, list[RevocationSource]]]:
    """A gate with max_stale_s 3, on_unavailable deny, and its source (a list
    of one, replaced when a test restarts it)."""
    source = RevocationSource()
    source.set_document(doc(1, [{"jti": ALWAYS_JTI}]), etag='"list-v1"')
    gate = Gate(tmp_path_factory.mktemp("revocation-stale"), source.port, max_stale_s=3)
    sources = [source]
    try:
        gate.wait_published(1, timeout=10)
        yield gate, sources
    finally:
        gate.stop()
        for s in sources:
            s.stop()


def test_not_modified_keeps_the_list_fresh(stale_gate: tuple[Gate, list[RevocationSource]]) -> None:
    gate, sources = stale_gate
    source = sources[-1]
    not_modified = gate.stat("fetch_not_modified")
    source.clear_requests()
    end = time.monotonic() + gate.max_stale_s + 2.5
    ages = []
    while time.monotonic() < end:
        assert gate.call(gate.token()) == OK  # never 503: the 304s keep it fresh
        assert gate.call(gate.token(jti=ALWAYS_JTI)) == REVOKED
        ages.append(gate.stat("age_s"))
        time.sleep(0.2)
    assert max(ages) <= POLL_S + 1, ages  # whole seconds since the last 304
    assert gate.stat("fetch_not_modified") >= not_modified + gate.max_stale_s
    answered = [r["answered"] for r in source.requests]
    assert answered and all(a == 304 for a in answered), answered
    assert all(r["headers"].get("if-none-match") == '"list-v1"' for r in source.requests)
    assert gate.stat("version") == 1 and gate.stat("entries") == 1
    gate.expect_on_both_workers({gate.token(): OK, gate.token(jti=ALWAYS_JTI): REVOKED})


def test_source_dies_later_list_kept_until_max_stale_s_then_policy(stale_gate: tuple[Gate, list[RevocationSource]]) -> None:
    gate, sources = stale_gate
    source = sources[-1]
    wait_until(lambda: source.requests and source.requests[-1]["answered"] in (200, 304), 5, 0.05, "a good fetch")
    failed = gate.stat("fetch_failed")
    # Dies: the kept-alive connection is closed without an answer, then the
    # listener goes (connection refused from now on).
    source.set(drop=True)
    source.stop()
    last_ok = max(r["time"] for r in source.requests if r["answered"] in (200, 304))
    keeper, revoked = gate.token(), gate.token(jti=ALWAYS_JTI)
    first_unavailable = None
    while time.time() < last_ok + gate.max_stale_s + 3:
        sent = time.time()
        got = gate.call(keeper)
        if got == UNAVAILABLE:
            first_unavailable = sent
            break
        assert got == OK, got
        got = gate.call(revoked)
        if got == UNAVAILABLE:  # staleness began between the two calls
            first_unavailable = sent
            break
        assert got == REVOKED, got  # kept while not stale
        time.sleep(0.05)
    assert gate.stat("fetch_failed") > failed
    assert first_unavailable is not None, "the list was still used more than max_stale_s + 3 s after the last good fetch"
    age = first_unavailable - last_ok
    print(f"\nsource died: 503 from {age:.3f} s after the last good fetch (max_stale_s {gate.max_stale_s})")
    assert gate.max_stale_s <= age <= gate.max_stale_s + 1.5, age
    # stale and deny: 503 on both workers, the revoked token included (never valid through a fault)
    gate.expect_on_both_workers({keeper: UNAVAILABLE, revoked: UNAVAILABLE, gate.token(jti=STATIC_JTI): REVOKED})
    assert gate.stat("age_s") >= gate.max_stale_s
    # the source returns with the same list: a 304 is a fresh fetch again
    not_modified = gate.stat("fetch_not_modified")
    back = RevocationSource(port=gate.source_port)
    sources.append(back)
    back.set_document(doc(1, [{"jti": ALWAYS_JTI}]), etag='"list-v1"')
    gate.wait_counter("fetch_not_modified", not_modified, timeout=DEADLINE_S + 2)
    time.sleep(0.6)
    gate.expect_on_both_workers({keeper: OK, revoked: REVOKED})
    assert gate.stat("age_s") <= POLL_S + 1
