#!/usr/bin/env python3
"""Soak: minutes of mixed traffic through one Envoy (two workers) running
tokengate, while the revocation list keeps changing and its source fails now
and then. A command, not a CI test. Run through ``scripts/soak [SECONDS]``
(default 600), or directly::

    .venv/bin/python benches/soak.py --duration 600 [--clients 8] [--seed N] ...

What runs (everything on 127.0.0.1, every process stopped by PID at the end,
also on Ctrl-C or SIGTERM):

* Envoy ``--concurrency 2``, log level ``info`` to a file, no access log,
  running the orders-api fixture every suite shares
  (``tests/data/orders-api.json``): three keys (HS256 ``2026-11``, here by
  ``secret_env``; HS384 ``2026-10`` inline; and the older HS512 ``2026-09``,
  inline as unpadded URL-safe base64, whose tokens are still around), issuer
  and audience, ``max_lifetime_s``, ``require_claims`` [exp, jti], roles,
  ``claims_to_headers``, rules (anonymous ``/healthz``, ``/orders`` read for
  GET/HEAD and write otherwise, role ``admin`` for ``/admin``, deny
  ``/internal``, a host denied, a catch-all), ``revocation``
  (``on_unavailable`` deny, the static entries; ``max_stale_s`` set to
  ``--max-stale``, 30); and the revocation service (``poll_interval_s`` 1,
  ``timeout_ms`` 500, a signed list: ``verify_key``) polling a
  ``RevocationSource``.
* An echo upstream (``EchoServer``, in a child process of this script so it
  does not share the clients' GIL): it answers with the request it received,
  so a client sees the headers tokengate forwarded.
* Client threads (``--clients``, 8), http.client, keep-alive connections with
  a share of fresh ones (``--fresh``, 10 %), sending a weighted mix:
  valid (200, and the echoed request carries ``x-auth-subject`` = the token's
  ``sub`` and ``x-auth-token-id`` = its ``jti``, once, and no token: a forged
  ``x-auth-subject`` sent by the client must be gone), revoked (401
  ``revoked``), expired (401 ``expired``), tampered (payload edited, a
  signature character changed, or signed with the wrong secret: 401
  ``bad_signature``), anonymous (``/healthz``, with no token, a valid one or a
  junk one: 200, no token nor claim header upstream), insufficient scope (403
  ``insufficient_scope``), missing (no token, or ``Basic``: 401 ``missing``),
  deny (``/internal``: 403 ``denied``).
* A mutator thread publishes a new list version every 2–5 s (adds a ``jti``
  entry, a ``sub`` + ``before`` entry, now and then a ``sub`` entry without
  ``before``, toggles a ``kid`` entry for the old key, removes old entries;
  the version always rises, sometimes by more than one) and now and then
  makes the source fail for one or two polls (each kind in turn, in a
  shuffled order): status 500, an answer slower
  than ``timeout_ms``, a dropped connection, garbage, an older version
  (rollback), a list signed with the wrong key, an unsigned list, or the
  same version with different entries (which must change nothing). A fault
  starts only once the last change has had its full grace window, and the
  next change waits until the fault is over, so ``max_stale_s`` is never
  reached: a 503 is never expected.

How each answer is judged: every response is compared with the decision the
configuration prescribes (status and ``reason``). For a token, that depends on
the list in force, which changes: a change made at time T must be enforced by
every worker from T + ``poll_interval_s`` + 1 s on (docs/revocation.md,
"Polling and the hand-over to workers"), so for a request sent at S and answered at R the lists that may be
in force are the newest one published at or before S − grace, and every later
one published up to R. The answer must fit one of them: revoked or not, in the
grace window either, and afterwards only the right one. A transport error or a
timeout is a wrong decision too.

Measured and reported: requests per kind, req/s, wrong decisions (the first 20
printed in detail), list versions published, faults injected, the service's
fetch counters, tokengate's own counters, Envoy's resident memory (VmRSS of the
process whose /proc/PID/exe is the envoy binary) every 10 s: at the end of
warm-up (the first 60 s, or 10 % of a shorter run), at the end, the maximum and
the growth; and Envoy's log scanned for a panic or a VM failure, with the
``wasm.*`` VM counters of ``/stats``.

PASS/FAIL per criterion: zero wrong decisions; RSS growth after warm-up under
5 %; no VM restart and no panic. Exit status 1 on any FAIL (or an interrupted
run). Files (Envoy's config and log, ``summary.json``, ``summary.txt``) stay
in ``.run/soak-<time>/``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402
from harness import HOST, Envoy, bootstrap, cluster, free_port, revocation_service, sign_list, tokengate_filter  # noqa: E402
from servers import EchoServer, RevocationSource  # noqa: E402

# ----------------------------------------------------------------- constants

# The orders-api fixture (tests/data/orders-api.json) every suite shares.
ORDERS = harness.orders_api()
ISSUER = ORDERS["issuers"][0]
AUDIENCE = ORDERS["audiences"][0]
STATIC_JTIS = {e["jti"] for e in ORDERS["revocation"]["static"] if "jti" in e}
STATIC_SUBS = {e["sub"] for e in ORDERS["revocation"]["static"] if "sub" in e}
STATIC_JTI = sorted(STATIC_JTIS)[0]  # the jti of the always-revoked token
KEY1_ENV = "SOAK_KEY_2026_11"
LIST_KEY_ENV = "SOAK_LIST_KEY"
# The fixture's keys: the newest (by secret_env), the one before, and an
# older one whose tokens are still around (the list revokes it now and then).
KID1, KID2, KID_OLD = (k["kid"] for k in ORDERS["keys"])
ALGS = {k["kid"]: k["alg"] for k in ORDERS["keys"]}
SECRETS = {k["kid"]: base64.b64decode(k["secret"]) for k in ORDERS["keys"]}

# Request kinds and their weights in the mix.
KINDS = {
    "valid": 40,
    "revoked": 12,
    "expired": 7,
    "tampered": 8,
    "anonymous": 10,
    "insufficient_scope": 9,
    "missing": 8,
    "denied": 6,
}

# Token profiles: what they carry and which requests they may / may not make.
ALLOWED = {
    "reader": [("GET", "/orders/{n}"), ("GET", "/api/items/{n}")],
    "writer": [("GET", "/orders/{n}"), ("POST", "/orders"), ("PUT", "/orders/{n}")],
    "manager": [("GET", "/orders/{n}"), ("POST", "/orders"), ("DELETE", "/orders/{n}")],
    "admin": [("GET", "/admin/users/{n}"), ("POST", "/orders"), ("GET", "/api/items/{n}")],
    "reporter": [("GET", "/reports/{n}"), ("GET", "/api/items/{n}")],
}
REFUSED = {
    "reader": [("POST", "/orders"), ("GET", "/admin/users/{n}")],
    "writer": [("GET", "/admin/users/{n}")],
    "manager": [("GET", "/admin/stats")],
    "admin": [],
    "reporter": [("GET", "/orders/{n}"), ("POST", "/orders"), ("GET", "/admin/users/{n}")],
}
PROFILE_WEIGHTS = {"reader": 30, "writer": 25, "manager": 15, "admin": 10, "reporter": 20}

OK = (200, None)
REVOKED = (401, "revoked")
CLAIM_HEADERS = tuple(ORDERS["claims_to_headers"].values())

LOG_PATTERNS = [
    ("panicked", re.compile(r"panicked", re.I)),
    ("Wasm VM failed", re.compile(r"wasm vm failed", re.I)),
    ("unreachable", re.compile(r"unreachable", re.I)),
    ("vm_reload", re.compile(r"vm_reload", re.I)),
    ("critical", re.compile(r"\]\[critical\]")),
    ("wasm trap", re.compile(r"Function: proxy_on_\w+ failed|RuntimeError", re.I)),
]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(claims: dict[str, Any], key: bytes, kid: str, alg: str) -> str:
    import jwt

    return str(jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"}))


# ------------------------------------------------------------------- tokens


@dataclass
class Tok:
    token: str
    kid: str
    sub: str
    jti: str
    iat: int
    profile: str


@dataclass
class Keys:
    wrong: bytes = field(default_factory=lambda: secrets.token_bytes(64))  # a secret no key has
    list_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def by_kid(self, kid: str) -> tuple[bytes, str]:
        """The fixture's secret and algorithm of key ``kid``."""
        return SECRETS[kid], ALGS[kid]


def profile_claims(profile: str) -> dict[str, Any]:
    return {
        "reader": {"scope": "orders:read"},
        "writer": {"scope": "orders:read orders:write"},
        "manager": {"roles": ["manager"]},
        "admin": {"role": "admin"},
        "reporter": {"scp": ["reports:read"]},
    }[profile]


def mint_tok(keys: Keys, rng: random.Random, sub: str, profile: str, iat: int, exp: int, kid: str | None = None, jti: str | None = None) -> Tok:
    if kid is None:
        kid = rng.choices([KID1, KID2, KID_OLD], weights=[55, 35, 10])[0]
    jti = jti or secrets.token_hex(10)
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": jti, "iat": iat, "exp": exp}
    claims.update(profile_claims(profile))
    key, alg = keys.by_kid(kid)
    return Tok(sign_jwt(claims, key, kid, alg), kid, sub, jti, iat, profile)


def tamper(tok: Tok, keys: Keys, how: str) -> str:
    """A token that must fail its MAC: the payload edited, a signature character
    changed (a middle one: every bit of it counts, so the base64url stays
    canonical), or the right kid signed with the wrong secret."""
    head, payload, sig = tok.token.split(".")
    if how == "payload":
        claims = json.loads(b64url_decode(payload))
        claims["sub"] = claims["sub"] + "-x"
        claims["role"] = "admin"
        return f"{head}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}.{sig}"
    if how == "signature":
        i = len(sig) // 2
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        c = alphabet[(alphabet.index(sig[i]) + 17) % 64]
        return f"{head}.{payload}.{sig[:i]}{c}{sig[i + 1:]}"
    claims = json.loads(b64url_decode(payload))
    _, alg = keys.by_kid(tok.kid)
    wrong = keys.wrong[: {"HS256": 32, "HS384": 48, "HS512": 64}[alg]]
    return sign_jwt(claims, wrong, tok.kid, alg)


# ------------------------------------------------------------ list timeline


@dataclass
class Version:
    """One list version as published at the source."""

    number: int
    entries: list[dict[str, Any]]
    body: str  # the signed document served
    t_before: float  # monotonic, just before the source served it
    t_after: float | None = None  # monotonic, once the source serves it
    jtis: set[str] = field(default_factory=set)
    kids: set[str] = field(default_factory=set)
    subs: dict[str, int | None] = field(default_factory=dict)  # sub → latest before, None = every token
    revoked_toks: list[Tok] = field(default_factory=list)  # tokens of the pool this version revokes
    note: str = ""

    def compile(self) -> None:
        for e in self.entries:
            if "jti" in e:
                self.jtis.add(e["jti"])
            elif "kid" in e:
                self.kids.add(e["kid"])
            elif "sub" in e:
                before = e.get("before")
                if e["sub"] in self.subs and (self.subs[e["sub"]] is None or before is None):
                    self.subs[e["sub"]] = None
                elif e["sub"] in self.subs:
                    self.subs[e["sub"]] = max(self.subs[e["sub"]] or 0, before)
                else:
                    self.subs[e["sub"]] = before

    def revokes(self, tok: Tok) -> bool:
        if tok.jti in STATIC_JTIS or tok.sub in STATIC_SUBS or tok.jti in self.jtis or tok.kid in self.kids:
            return True
        if tok.sub in self.subs:
            before = self.subs[tok.sub]
            return before is None or tok.iat < before
        return False


class Timeline:
    """Every version published, in order; read by the client threads."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.versions: list[Version] = []
        self.lock = threading.Lock()

    def add(self, v: Version) -> None:
        with self.lock:
            self.versions.append(v)

    def latest(self) -> Version:
        return self.versions[-1]

    def candidates(self, t_send: float, t_recv: float) -> list[Version]:
        """The versions that may be in force for a request sent at ``t_send``
        and answered at ``t_recv``: the newest one served since at least the
        grace window before the send, and every later one served by the answer."""
        versions = self.versions[:]  # appends are atomic; a copy is a consistent prefix
        base = 0
        for i in range(len(versions) - 1, -1, -1):
            ta = versions[i].t_after
            if ta is not None and ta <= t_send - self.grace:
                base = i
                break
        out = [versions[base]]
        for v in versions[base + 1 :]:
            if v.t_before <= t_recv:
                out.append(v)
        return out


# ------------------------------------------------------------------ results


@dataclass
class Wrong:
    t: float
    kind: str
    method: str
    path: str
    token: str
    expected: list[Any]
    got: Any
    versions: list[int]
    detail: str = ""


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count: dict[str, int] = {k: 0 for k in KINDS}
        self.grace: dict[str, int] = {k: 0 for k in KINDS}  # answers where either decision was acceptable
        self.outcomes: dict[str, dict[str, int]] = {k: {} for k in KINDS}
        self.wrong: list[Wrong] = []
        self.wrong_total = 0
        self.transport_errors = 0
        self.fresh_connections = 0
        self.total = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.grace_new = 0  # grace-window answers that already followed the newest list
        self.grace_old = 0  # ... that still followed an older one
        self.max_lag = float("-inf")  # the latest such old answer, seconds after the newer list was served

    def record(self, kind: str, got: Any, ok: bool, ambiguous: bool, latency: float, wrong: Wrong | None) -> None:
        with self.lock:
            self.total += 1
            self.count[kind] += 1
            if ambiguous:
                self.grace[kind] += 1
            key = f"{got[0]} {got[1]}" if got[1] else str(got[0])
            self.outcomes[kind][key] = self.outcomes[kind].get(key, 0) + 1
            self.latency_sum += latency
            self.latency_max = max(self.latency_max, latency)
            if not ok:
                self.wrong_total += 1
                if got[0] == "error":
                    self.transport_errors += 1
                if wrong is not None and len(self.wrong) < 200:
                    self.wrong.append(wrong)


# -------------------------------------------------------------------- state


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.keys = Keys()
        self.stop = threading.Event()
        self.interrupted = False
        self.t0 = time.monotonic()
        self.wall0 = int(time.time())
        self.timeline = Timeline(args.grace)
        self.results = Results()
        self.faults: dict[str, int] = {}
        self.fault_log: list[str] = []
        self.rundir = Path(args.out) if args.out else REPO / ".run" / time.strftime("soak-%Y%m%d-%H%M%S")
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.envoy: Envoy | None = None
        self.envoy_pid: int | None = None
        self.source: RevocationSource | None = None
        self.echo_proc: subprocess.Popen[str] | None = None
        self.echo_port = 0
        self.rss: list[tuple[float, int]] = []  # (seconds since traffic start, KiB)
        self.rss_warm: int | None = None
        self.traffic_t0 = 0.0
        self.traffic_t1 = 0.0
        self.pool_lock = threading.Lock()
        self.exp = self.wall0 + int(args.duration) + 1800
        self.iat = self.wall0 - 120
        self.entry_added: dict[str, float] = {}  # entry key → monotonic time it was added
        self.run_entries: set[str] = set()  # keys of the entries this run added
        self.fault_bag: list[str] = []

    # ---- tokens

    def make_tokens(self) -> None:
        rng = self.rng
        n_sub = self.args.subjects
        self.subjects = [f"user-{i:04d}" for i in range(n_sub)]
        self.sub_profile = {s: rng.choices(list(PROFILE_WEIGHTS), weights=list(PROFILE_WEIGHTS.values()))[0] for s in self.subjects}
        self.pool: list[Tok] = []
        for i in range(self.args.tokens):
            sub = self.subjects[i % n_sub]
            self.pool.append(mint_tok(self.keys, rng, sub, self.sub_profile[sub], self.iat, self.exp))
        self.by_sub: dict[str, list[Tok]] = {}
        for t in self.pool:
            self.by_sub.setdefault(t.sub, []).append(t)
        # Always revoked: the static entry of the configuration.
        self.static_tok = mint_tok(self.keys, rng, "user-static", "reader", self.iat, self.exp, jti=STATIC_JTI)
        # Expired an hour ago (well past clock_skew_s).
        self.expired = [
            mint_tok(self.keys, rng, rng.choice(self.subjects), rng.choice(list(ALLOWED)), self.wall0 - 7200, self.wall0 - 3600)
            for _ in range(100)
        ]
        hows = ["payload", "signature", "wrong_key"]
        self.tampered = [(tamper(t, self.keys, hows[i % 3]), t) for i, t in enumerate(rng.sample(self.pool, min(300, len(self.pool))))]
        self.junk = ["junk", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", self.tampered[0][0]]

    # ---- the list

    def initial_entries(self) -> list[dict[str, Any]]:
        """A realistic baseline: a few hundred revoked jtis and some subjects
        that match no token of the run."""
        far = self.wall0 + int(self.args.duration) + 3600
        entries: list[dict[str, Any]] = [{"jti": secrets.token_hex(10), "exp": far} for _ in range(300)]
        entries += [{"sub": f"gone-{i}", "before": self.wall0 - 86400} for i in range(20)]
        return entries

    def publish(self, number: int, entries: list[dict[str, Any]], note: str) -> Version:
        doc = {"version": number, "generated_at": int(time.time()), "entries": entries}
        body = sign_list(doc, base64.b64encode(self.keys.list_key).decode())
        v = Version(number, [dict(e) for e in entries], body, t_before=time.monotonic(), note=note)
        v.compile()
        with self.pool_lock:
            pool = list(self.pool)
        v.revoked_toks = [t for t in pool if v.revokes(t)]
        self.timeline.add(v)  # before the source serves it: the clients count it as possible from now on
        assert self.source is not None
        self.source.set(body=body, status=200, delay_s=0.0, drop=False)
        v.t_after = time.monotonic()
        return v

    def mutate(self, version: Version) -> tuple[int, list[dict[str, Any]], str]:
        """The next list: one or two changes, and a higher version."""
        rng = self.rng
        entries = [dict(e) for e in version.entries]
        now_m = time.monotonic()
        notes = []
        # Remove an old entry added by this run now and then.
        if rng.random() < 0.3:
            # Mostly an entry this run added (it revokes tokens in use), sometimes a baseline one.
            from_run = rng.random() < 0.8
            old = [
                i
                for i, e in enumerate(entries)
                if "kid" not in e
                and self.entry_added.get(json.dumps(e, sort_keys=True), now_m) < now_m - 10
                and (json.dumps(e, sort_keys=True) in self.run_entries) == from_run
            ]
            if old:
                e = entries.pop(rng.choice(old))
                notes.append(f"-{short(e)}")
        # The old key: revoked now and then, and un-revoked later.
        kid_entries = [i for i, e in enumerate(entries) if "kid" in e]
        if kid_entries and now_m - self.entry_added.get(json.dumps(entries[kid_entries[0]], sort_keys=True), now_m) > 12 and rng.random() < 0.5:
            e = entries.pop(kid_entries[0])
            notes.append(f"-{short(e)}")
        elif not kid_entries and rng.random() < 0.06:
            e = {"kid": KID_OLD}
            entries.append(e)
            notes.append(f"+{short(e)}")
        # Always add something.
        r = rng.random()
        with self.pool_lock:
            pool = list(self.pool)
        if r < 0.6:
            t = rng.choice(pool)
            e = {"jti": t.jti, "exp": self.exp}
        else:
            sub = rng.choice(self.subjects)
            if r < 0.93:
                before = int(time.time())
                e = {"sub": sub, "before": before}
                # Tokens of that subject issued from `before` on stay valid.
                fresh = [mint_tok(self.keys, rng, sub, self.sub_profile[sub], before, self.exp) for _ in range(2)]
                with self.pool_lock:
                    self.pool.extend(fresh)
                    self.by_sub.setdefault(sub, []).extend(fresh)
            else:
                e = {"sub": sub}
        entries.append(e)
        self.run_entries.add(json.dumps(e, sort_keys=True))
        notes.append(f"+{short(e)}")
        for e in entries:
            self.entry_added.setdefault(json.dumps(e, sort_keys=True), now_m)
        return version.number + rng.choice([1, 1, 1, 2, 7]), entries, " ".join(notes)

    # ---- faults

    FAULTS = ["status_500", "slow", "drop", "garbage", "rollback", "forged", "unsigned", "same_version"]

    def inject_fault(self, kind: str) -> str:
        """Make the source fail (or serve something that must change nothing); returns the kind used."""
        assert self.source is not None
        cur = self.timeline.latest()
        if kind == "rollback" and len(self.timeline.versions) < 2:
            kind = "same_version"  # nothing older to roll back to yet
        if kind == "status_500":
            self.source.set(status=500)
        elif kind == "slow":
            self.source.set(delay_s=self.args.timeout_ms / 1000 + 0.7)
        elif kind == "drop":
            self.source.set(drop=True)
        elif kind == "garbage":
            self.source.set(body=secrets.token_bytes(self.rng.randint(1, 600)))
        elif kind == "rollback":
            older = self.timeline.versions[max(0, len(self.timeline.versions) - 1 - self.rng.randint(1, 5))]
            self.source.set(body=older.body)
        elif kind == "forged":
            doc = {"version": cur.number + 1000, "entries": []}
            self.source.set(body=sign_list(doc, base64.b64encode(self.keys.wrong).decode()))
        elif kind == "unsigned":
            self.source.set(document={"version": cur.number + 1000, "entries": []})
        elif kind == "same_version":
            # Same version, every entry gone: the version must rise (docs/revocation.md,
            # "Rollback, faults and age"), so this is a failed fetch and changes nothing.
            doc = {"version": cur.number, "generated_at": int(time.time()), "entries": []}
            self.source.set(body=sign_list(doc, base64.b64encode(self.keys.list_key).decode()))
        return kind

    def clear_fault(self) -> None:
        assert self.source is not None
        self.source.set(body=self.timeline.latest().body, status=200, delay_s=0.0, drop=False)

    def mutator(self) -> None:
        rng = self.rng
        grace = self.args.grace
        last_change = time.monotonic()
        try:
            while not self.stop.is_set():
                if self.stop.wait(rng.uniform(2.0, 5.0)):
                    break
                if rng.random() < self.args.fault_rate:
                    # Let the last change have its whole grace window first.
                    wait = last_change + grace + 0.5 - time.monotonic()
                    if wait > 0 and self.stop.wait(wait):
                        break
                    if not self.fault_bag:  # every kind once, in a random order, then again
                        self.fault_bag = rng.sample(self.FAULTS, len(self.FAULTS))
                    kind = self.fault_bag.pop()
                    dur = rng.uniform(1.3, 2.6)  # at least one poll, at most about two
                    t = time.monotonic() - self.traffic_t0
                    kind = self.inject_fault(kind)
                    cut = self.stop.wait(dur)
                    self.clear_fault()
                    if cut:  # the run ended during the fault: not counted
                        self.fault_log.append(f"{t:7.1f}s {kind} cut short by the end of the run")
                        break
                    self.faults[kind] = self.faults.get(kind, 0) + 1
                    self.fault_log.append(f"{t:7.1f}s {kind} {dur:.1f}s")
                    # A poll sent during the fault may still be in flight.
                    if self.stop.wait(self.args.timeout_ms / 1000 + 0.3):
                        break
                number, entries, note = self.mutate(self.timeline.latest())
                self.publish(number, entries, note)
                last_change = time.monotonic()
        except Exception as err:  # noqa: BLE001 - reported, then the run stops
            print(f"soak: mutator failed: {err!r}", file=sys.stderr)
            self.mutator_error = repr(err)
            self.stop.set()

    mutator_error: str | None = None

    # ---- clients

    def pick(self, kind: str, rng: random.Random) -> tuple[str, str, dict[str, str], bytes, Tok | None, str]:
        """(method, path, headers, body, token meta, mode) of one request of ``kind``."""
        n = rng.randint(1, 99999)
        latest = self.timeline.latest()
        headers: dict[str, str] = {}
        body = b""
        if kind in ("valid", "insufficient_scope", "revoked"):
            tok: Tok | None = None
            if kind == "revoked":
                choices = latest.revoked_toks
                tok = self.static_tok if not choices or rng.random() < 0.05 else rng.choice(choices)
            else:
                for _ in range(8):
                    tok = rng.choice(self.pool)
                    if kind == "insufficient_scope" and not REFUSED[tok.profile]:
                        continue
                    if not latest.revokes(tok):
                        break
            assert tok is not None
            if kind == "insufficient_scope" and REFUSED[tok.profile]:
                method, path = rng.choice(REFUSED[tok.profile])
                mode = "refused"
            else:
                method, path = rng.choice(ALLOWED[tok.profile])
                mode = "allowed"
            headers["authorization"] = f"Bearer {tok.token}"
            if rng.random() < 0.2:
                headers["x-auth-subject"] = "forged-by-client"
            if method in ("POST", "PUT"):
                body = json.dumps({"item": n}).encode()
            return method, path.format(n=n), headers, body, tok, mode
        if kind == "expired":
            tok = rng.choice(self.expired)
            method, path = rng.choice(ALLOWED[tok.profile])
            headers["authorization"] = f"Bearer {tok.token}"
            return method, path.format(n=n), headers, body, tok, "expired"
        if kind == "tampered":
            text, tok = rng.choice(self.tampered)
            method, path = rng.choice(ALLOWED[tok.profile])
            headers["authorization"] = f"Bearer {text}"
            return method, path.format(n=n), headers, body, tok, "tampered"
        if kind == "anonymous":
            r = rng.random()
            if r < 0.15:
                headers["authorization"] = f"Bearer {rng.choice(self.pool).token}"
            elif r < 0.3:
                headers["authorization"] = f"Bearer {rng.choice(self.junk)}"
            if rng.random() < 0.3:
                headers["x-auth-subject"] = "forged-by-client"
                headers["x-auth-token-id"] = "forged"
            return "GET", f"/healthz/docs/{n}", headers, body, None, "anonymous"
        if kind == "missing":
            if rng.random() < 0.3:
                headers["authorization"] = "Basic dXNlcjpwYXNz"
            method, path = rng.choice([("GET", "/orders/{n}"), ("POST", "/orders"), ("GET", "/api/items/{n}"), ("GET", "/admin/users/{n}")])
            return method, path.format(n=n), headers, body, None, "missing"
        # denied
        if rng.random() < 0.5:
            headers["authorization"] = f"Bearer {rng.choice(self.pool).token}"
        return rng.choice(["GET", "POST"]), f"/internal/jobs/{n}", headers, body, None, "denied"

    def expected(self, mode: str, tok: Tok | None, t_send: float, t_recv: float) -> tuple[list[tuple[int, str | None]], list[Version], list[Any]]:
        """The acceptable (status, reason) answers, the list versions that may
        be in force, and the answer under each of them."""
        fixed = {"anonymous": OK, "missing": (401, "missing"), "denied": (403, "denied"), "expired": (401, "expired"), "tampered": (401, "bad_signature")}
        if mode in fixed:
            return [fixed[mode]], [], []
        assert tok is not None
        plain = OK if mode == "allowed" else (403, "insufficient_scope")
        cands = self.timeline.candidates(t_send, t_recv)
        per = [REVOKED if v.revokes(tok) else plain for v in cands]
        out: list[tuple[int, str | None]] = []
        for want in per:
            if want not in out:
                out.append(want)
        return out, cands, per

    @staticmethod
    def lag(got: Any, t_send: float, cands: list[Version], per: list[Any]) -> float | None:
        """For an answer given under an older list while a newer one that
        decides otherwise was already served: how long after that newer list
        was served the request was sent (a lower bound of the worker's lag)."""
        idx = max((i for i, want in enumerate(per) if want == got), default=None)
        if idx is None:
            return None
        for v, want in zip(cands[idx + 1 :], per[idx + 1 :]):
            if want != got and v.t_after is not None:
                return t_send - v.t_after
        return None

    def judge(self, mode: str, tok: Tok | None, status: int, rheaders: dict[str, str], data: bytes, method: str, path: str) -> tuple[tuple[Any, Any], str]:
        """(status, reason) as seen, with a problem description for a 200 whose echo is wrong."""
        if status != 200:
            try:
                reason = json.loads(data).get("reason")
            except (ValueError, AttributeError):
                reason = f"<not JSON: {data[:60]!r}>"
            if rheaders.get("content-type") != "application/json":
                return (status, reason), f"content-type {rheaders.get('content-type')!r}"
            return (status, reason), ""
        if rheaders.get("x-echo") != "1":
            return (200, "<not from the upstream>"), data[:80].decode("utf-8", "replace")
        try:
            echo = json.loads(data)
        except ValueError:
            return (200, "<echo not JSON>"), ""
        seen = echo.get("headers", {})
        problems = []
        if echo.get("path") != path or echo.get("method") != method:
            problems.append(f"upstream saw {echo.get('method')} {echo.get('path')}")
        if "authorization" in seen:
            problems.append("the token went upstream")
        if mode == "anonymous":
            for h in CLAIM_HEADERS:
                if h in seen:
                    problems.append(f"{h}={seen[h]!r} upstream on an anonymous route")
        else:
            assert tok is not None
            if seen.get("x-auth-subject") != tok.sub:
                problems.append(f"x-auth-subject={seen.get('x-auth-subject')!r}, expected {tok.sub!r}")
            if seen.get("x-auth-token-id") != tok.jti:
                problems.append(f"x-auth-token-id={seen.get('x-auth-token-id')!r}, expected {tok.jti!r}")
        if problems:
            return (200, "<bad forward>"), "; ".join(problems)
        return OK, ""

    def client(self, idx: int) -> None:
        rng = random.Random((self.args.seed or 0) * 1000 + idx + 1 if self.args.seed is not None else None)
        kinds, weights = list(KINDS), list(KINDS.values())
        port = self.envoy.listener_port if self.envoy else 0
        conn: http.client.HTTPConnection | None = None
        res = self.results
        while not self.stop.is_set():
            kind = rng.choices(kinds, weights=weights)[0]
            method, path, headers, body, tok, mode = self.pick(kind, rng)
            if conn is None or rng.random() < self.args.fresh:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=self.args.request_timeout)
                with res.lock:
                    res.fresh_connections += 1
            t_send = time.monotonic()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                rheaders = {k.lower(): v for k, v in resp.getheaders()}
                if resp.will_close:
                    conn.close()
                    conn = None
                got, detail = self.judge(mode, tok, status, rheaders, data, method, path)
            except (OSError, http.client.HTTPException) as err:
                got, detail = ("error", type(err).__name__), str(err)
                if conn is not None:
                    conn.close()
                conn = None
            t_recv = time.monotonic()
            if self.stop.is_set() and got[0] == "error":
                break  # shutting down
            want, cands, per = self.expected(mode, tok, t_send, t_recv)
            versions = [v.number for v in cands]
            ok = got in want and not detail
            if ok and len(want) > 1:
                lag = self.lag(got, t_send, cands, per)
                with res.lock:
                    if lag is None:
                        res.grace_new += 1
                    else:
                        res.grace_old += 1
                        res.max_lag = max(res.max_lag, lag)
            wrong = None
            if not ok:
                desc = f"{mode}"
                if tok is not None:
                    desc += f" kid={tok.kid} sub={tok.sub} jti={tok.jti} iat={tok.iat} profile={tok.profile}"
                wrong = Wrong(t_send - self.traffic_t0, kind, method, path, desc, want, got, versions, detail)
            res.record(kind, got, ok, len(want) > 1, t_recv - t_send, wrong)
        if conn is not None:
            conn.close()

    # ---- processes

    def start_echo(self) -> None:
        """The echo upstream in a child process (stopped by PID)."""
        self.echo_proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-echo"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=harness._die_with_parent,
        )
        assert self.echo_proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.echo_proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(15)
        line = box[0] if box else ""
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"the echo server did not start (said {line!r})")
        self.echo_port = int(m.group(1))

    def config(self) -> dict[str, Any]:
        # The fixture, its newest key's secret by secret_env and its oldest
        # one's as unpadded URL-safe base64 (another encoding of the same
        # bytes), the list's staleness bound from --max-stale.
        filter_cfg = harness.orders_api()
        for key in filter_cfg["keys"]:
            if key["kid"] == KID1:
                del key["secret"]
                key["secret_env"] = KEY1_ENV
            elif key["kid"] == KID_OLD:
                key["secret"] = base64.urlsafe_b64encode(SECRETS[KID_OLD]).decode().rstrip("=")
        filter_cfg["revocation"]["max_stale_s"] = self.args.max_stale
        service_cfg = {
            "cluster": "revocation_source",
            "authority": "revocations.internal",
            "path": "/v1/revocations",
            "poll_interval_s": self.args.poll_interval,
            "timeout_ms": self.args.timeout_ms,
            "verify_key": {"alg": "HS256", "secret_env": LIST_KEY_ENV},
        }
        assert self.source is not None
        return bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=self.echo_port,
            http_filters=[tokengate_filter(filter_cfg)],
            clusters=[cluster("revocation_source", self.source.port)],
            bootstrap_extensions=[revocation_service(service_cfg)],
            access_log=False,
        )

    def find_envoy_pid(self) -> int:
        """The PID whose /proc/PID/exe is the envoy binary (the .venv entry point execs it)."""
        assert self.envoy is not None and self.envoy.pid is not None
        todo = [self.envoy.pid]
        while todo:
            pid = todo.pop(0)
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = ""
            if Path(exe).name == "envoy":
                return pid
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                            todo.append(int(entry.name))
                    except (OSError, ValueError, IndexError):
                        continue
        raise RuntimeError(f"no envoy binary among PID {self.envoy.pid} and its children")

    def vm_rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.envoy_pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def wasm_vm_stats(self) -> dict[str, int]:
        assert self.envoy is not None
        stats = self.envoy.stats()
        return {k: int(v or 0) for k, v in stats.items() if k.startswith("wasm.") and not k.startswith("wasm.remote_load")}

    def tokengate_stats(self) -> dict[str, int]:
        assert self.envoy is not None
        return {k[len("wasmcustom.") :]: int(v or 0) for k, v in self.envoy.stats().items() if k.startswith("wasmcustom.tokengate.")}

    # ---- run

    def warm_check(self) -> None:
        """Before the traffic: the list is published and both workers use it."""
        assert self.envoy is not None
        v1 = self.timeline.latest().number
        harness.wait_until(lambda: self.tokengate_stats().get("tokengate.revocation.version") == v1, 15, 0.1, f"list version {v1} published")
        time.sleep(0.6)  # every worker's 250 ms tick has copied it
        valid = next(t for t in self.pool if t.profile == "reader")
        for _ in range(20):  # fresh connections: the kernel spreads them over both workers
            r = self.envoy.request("GET", "/orders/1", headers={"authorization": f"Bearer {valid.token}"})
            if r.status != 200:
                raise RuntimeError(f"warm check: a valid token got {r.status} {r.body[:200]!r}")
            r = self.envoy.request("GET", "/orders/1", headers={"authorization": f"Bearer {self.static_tok.token}"})
            if (r.status, r.json().get("reason")) != REVOKED:
                raise RuntimeError(f"warm check: the statically revoked token got {r.status} {r.body[:200]!r}")

    def run(self) -> int:
        args = self.args
        if not harness.ENVOY_BIN.exists():
            print(f"soak: {harness.ENVOY_BIN} is missing: run scripts/setup", file=sys.stderr)
            return 2
        if not harness.WASM_PATH.exists():
            print(f"soak: {harness.WASM_PATH} is missing: cargo build --release --target wasm32-wasip1", file=sys.stderr)
            return 2
        print(f"soak: {args.duration:g} s, {args.clients} clients, files in {self.rundir}", file=sys.stderr)
        self.make_tokens()
        self.source = RevocationSource()
        self.start_echo()
        self.publish(1, self.initial_entries(), "initial")
        self.timeline.versions[0].t_after = time.monotonic() - 3600  # served long before Envoy starts
        env = {KEY1_ENV: base64.b64encode(SECRETS[KID1]).decode(), LIST_KEY_ENV: base64.b64encode(self.keys.list_key).decode()}
        self.envoy = Envoy(self.config(), env=env, concurrency=2, log_level="info", workdir=self.rundir / "envoy")
        self.envoy_pid = self.find_envoy_pid()
        self.warm_check()
        vm_start = self.wasm_vm_stats()
        tg_start = self.tokengate_stats()

        warmup = args.warmup if args.warmup is not None else min(60.0, 0.1 * args.duration)
        self.traffic_t0 = time.monotonic()
        deadline = self.traffic_t0 + args.duration
        threads = [threading.Thread(target=self.client, args=(i,), name=f"client-{i}", daemon=True) for i in range(args.clients)]
        mut = threading.Thread(target=self.mutator, name="mutator", daemon=True)
        for t in threads:
            t.start()
        mut.start()

        sample_times = sorted({warmup, *[float(x) for x in range(int(args.rss_interval), int(args.duration), int(args.rss_interval))]})
        sample_times = [s for s in sample_times if s < args.duration]
        next_progress = self.traffic_t0 + 10
        self.rss.append((0.0, self.vm_rss_kib() or 0))
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if sample_times and now - self.traffic_t0 >= sample_times[0]:
                s = sample_times.pop(0)
                kib = self.vm_rss_kib()
                if kib is None or not self.envoy.alive:
                    print("soak: Envoy is gone", file=sys.stderr)
                    self.envoy_died = True
                    break
                self.rss.append((now - self.traffic_t0, kib))
                if s == warmup:
                    self.rss_warm = kib
            if now >= next_progress:
                next_progress += 10
                r = self.results
                el = now - self.traffic_t0
                print(
                    f"soak: {el:6.0f}s  {r.total} requests ({r.total / el:.0f}/s)  wrong {r.wrong_total}  "
                    f"list v{self.timeline.latest().number}  faults {sum(self.faults.values())}  rss {(self.rss[-1][1]) / 1024:.1f} MiB",
                    file=sys.stderr,
                )
            self.stop.wait(min(0.5, max(0.0, deadline - now)))
        self.traffic_t1 = time.monotonic()
        self.stop.set()
        for t in threads:
            t.join(args.request_timeout + 5)
        mut.join(10)
        # Final measurements.
        end_rss = self.vm_rss_kib()
        if end_rss is not None:
            self.rss.append((self.traffic_t1 - self.traffic_t0, end_rss))
        if self.rss_warm is None and len(self.rss) > 1:
            self.rss_warm = self.rss[1][1]
        time.sleep(0.3)  # let the counters of the last requests land
        return self.report(vm_start, tg_start, end_rss, warmup)

    envoy_died = False

    # ---- report

    def report(self, vm_start: dict[str, int], tg_start: dict[str, int], end_rss: int | None, warmup: float) -> int:
        assert self.envoy is not None
        r = self.results
        elapsed = self.traffic_t1 - self.traffic_t0
        alive = self.envoy.alive and not self.envoy_died
        vm_end = self.wasm_vm_stats() if alive else {}
        tg_end = self.tokengate_stats() if alive else {}
        time.sleep(0.3)
        log = self.envoy.log_text()
        findings: dict[str, list[str]] = {}
        for name, rx in LOG_PATTERNS:
            hits = [line for line in log.splitlines() if rx.search(line)]
            if hits:
                findings[name] = hits
        fetch_warns = sum(1 for line in log.splitlines() if "fetch failed" in line)
        vm_problems = []
        for k, v in vm_end.items():
            if "vm_reload" in k and v:
                vm_problems.append(f"{k}={v}")
        for k in ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active", "wasm.wasm_vm_count"):
            if alive and k in vm_start and vm_end.get(k) != vm_start[k]:
                vm_problems.append(f"{k} {vm_start[k]} -> {vm_end.get(k)}")
        if not alive and not self.interrupted:
            vm_problems.append("Envoy exited during the run")
        elif not alive:
            vm_problems.append("Envoy stopped (interrupted: Ctrl-C reaches Envoy too); VM counters not read")

        def delta(name: str) -> int:
            return tg_end.get(name, 0) - tg_start.get(name, 0)

        warm = self.rss_warm or 0
        max_rss = max((k for t, k in self.rss if t >= warmup), default=end_rss or 0)
        growth = (100.0 * ((end_rss or 0) - warm) / warm) if warm else float("nan")
        growth_max = (100.0 * (max_rss - warm) / warm) if warm else float("nan")

        crit = {
            "zero wrong decisions": r.wrong_total == 0 and r.total > 0 and self.mutator_error is None,
            f"RSS growth after warm-up < {self.args.rss_limit:g} %": bool(warm) and end_rss is not None and growth < self.args.rss_limit,
            "no VM restart, no panic": alive and not findings and not vm_problems,
        }
        versions = self.timeline.versions
        lines: list[str] = []
        add = lines.append
        add("")
        add(f"# tokengate soak: {elapsed:.0f} s{' (INTERRUPTED)' if self.interrupted else ''}")
        add("")
        add("| | |")
        add("|---|---|")
        add(f"| duration | {elapsed:.1f} s of traffic (warm-up {warmup:g} s), Envoy --concurrency 2, {self.args.clients} client threads, {self.args.fresh:.0%} fresh connections |")
        add(f"| requests | {r.total} ({r.total / elapsed:.0f} req/s), mean latency {1000 * r.latency_sum / max(1, r.total):.1f} ms, max {1000 * r.latency_max:.0f} ms; {r.fresh_connections} connections opened |")
        for kind in KINDS:
            outs = ", ".join(f"{k}: {v}" for k, v in sorted(r.outcomes[kind].items(), key=lambda kv: -kv[1]))
            grace = f"; {r.grace[kind]} in a grace window (either answer accepted)" if r.grace[kind] else ""
            add(f"| · {kind} | {r.count[kind]} ({outs}){grace} |")
        add(f"| wrong decisions | {r.wrong_total} (transport errors among them: {r.transport_errors}) |")
        lag = f"the latest sent {r.max_lag:.2f} s after the newer list was served" if r.grace_old else "none"
        add(
            f"| grace windows | {r.grace_new + r.grace_old} answers while a list change was settling (grace {self.args.grace:g} s): "
            f"{r.grace_new} already under the newest list, {r.grace_old} still under the previous one ({lag}) |"
        )
        add(f"| list versions published | {len(versions) - 1} changes after v1, last v{versions[-1].number} with {len(versions[-1].entries)} entries |")
        add(f"| source faults injected | {sum(self.faults.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) + " |")
        add(
            f"| revocation counters (run) | fetch_ok {delta('tokengate.revocation.fetch_ok')}, fetch_not_modified {delta('tokengate.revocation.fetch_not_modified')}, "
            f"fetch_failed {delta('tokengate.revocation.fetch_failed')}, rollback_refused {delta('tokengate.revocation.rollback_refused')}; "
            f"'fetch failed' log lines {fetch_warns}; gauges at the end: version {tg_end.get('tokengate.revocation.version')}, "
            f"entries {tg_end.get('tokengate.revocation.entries')}, age_s {tg_end.get('tokengate.revocation.age_s')} |"
        )
        failing = sum(v for k, v in self.faults.items() if k != "same_version")
        effect_ok = delta("tokengate.revocation.fetch_failed") >= failing and delta("tokengate.revocation.rollback_refused") >= self.faults.get("rollback", 0)
        add(
            f"| fault effects | {failing} faults that must fail a fetch → fetch_failed {delta('tokengate.revocation.fetch_failed')}, "
            f"{self.faults.get('rollback', 0)} rollbacks → rollback_refused {delta('tokengate.revocation.rollback_refused')}: "
            f"{'as expected' if effect_ok else 'FEWER THAN EXPECTED (a fault did not reach a poll?)'}; "
            f"list in force at the end v{tg_end.get('tokengate.revocation.version')} = last published v{versions[-1].number}: "
            f"{'yes' if tg_end.get('tokengate.revocation.version') == versions[-1].number else 'NO'} |"
        )
        tg_total = delta("tokengate.allowed") + delta("tokengate.anonymous") + sum(delta(k) for k in tg_end if k.startswith("tokengate.denied."))
        denied = ", ".join(f"{k.split('.')[-1]} {delta(k)}" for k in sorted(tg_end) if k.startswith("tokengate.denied.") and delta(k))
        add(f"| tokengate counters (run) | {tg_total} decisions: allowed {delta('tokengate.allowed')}, anonymous {delta('tokengate.anonymous')}, {denied} |")
        add(f"| Envoy RSS | warm-up end {mib(warm)}, end {mib(end_rss or 0)}, max after warm-up {mib(max_rss)}; growth {growth:+.2f} % (max {growth_max:+.2f} %) |")
        add(f"| RSS samples | " + " ".join(f"{t:.0f}s:{k / 1024:.1f}" for t, k in self.rss) + " (MiB) |")
        add(f"| log findings | {', '.join(f'{k}: {len(v)}' for k, v in findings.items()) or 'none'} |")
        add(f"| wasm VM stats | {', '.join(vm_problems) or 'no reload, VM counts unchanged'} (" + ", ".join(f"{k.removeprefix('wasm.')}={v}" for k, v in sorted(vm_end.items())) + ") |")
        if self.mutator_error:
            add(f"| mutator | FAILED: {self.mutator_error} |")
        add("")
        for name, ok in crit.items():
            add(f"{'PASS' if ok else 'FAIL'}  {name}")
        if self.interrupted:
            add("FAIL  the run was interrupted")
        passed = all(crit.values()) and not self.interrupted
        add("")
        add(f"soak: {'PASS' if passed else 'FAIL'} (files in {self.rundir})")
        if r.wrong:
            add("")
            add(f"First {min(20, len(r.wrong))} of {r.wrong_total} wrong decisions:")
            for w in r.wrong[:20]:
                add(f"  t={w.t:7.2f}s {w.kind}: {w.method} {w.path} [{w.token}] expected {w.expected} got {w.got} versions {w.versions} {w.detail}")
        for name, hits in findings.items():
            add("")
            add(f"Log lines matching {name!r} (first 5 of {len(hits)}):")
            for line in hits[:5]:
                add("  " + line[:300])
        text = "\n".join(lines)
        print(text)
        (self.rundir / "summary.txt").write_text(text + "\n")
        summary = {
            "duration_s": elapsed,
            "warmup_s": warmup,
            "clients": self.args.clients,
            "requests": r.total,
            "req_per_s": r.total / elapsed if elapsed else 0,
            "per_kind": r.count,
            "grace_answers": r.grace,
            "grace_new_list": r.grace_new,
            "grace_old_list": r.grace_old,
            "max_lag_s": r.max_lag if r.grace_old else None,
            "outcomes": r.outcomes,
            "wrong_decisions": r.wrong_total,
            "transport_errors": r.transport_errors,
            "wrong": [w.__dict__ for w in r.wrong],
            "versions": [{"version": v.number, "entries": len(v.entries), "t": (v.t_after or 0) - self.traffic_t0, "note": v.note} for v in versions],
            "faults": self.faults,
            "fault_log": self.fault_log,
            "tokengate_counters_delta": {k: delta(k) for k in tg_end},
            "rss_kib": {"warmup": warm, "end": end_rss, "max": max_rss, "growth_pct": growth, "samples": self.rss},
            "log_findings": {k: v[:20] for k, v in findings.items()},
            "wasm_vm": {"start": vm_start, "end": vm_end, "problems": vm_problems},
            "criteria": crit,
            "interrupted": self.interrupted,
            "pass": passed,
        }
        (self.rundir / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        return 0 if passed else 1

    def cleanup(self) -> None:
        self.stop.set()
        if self.envoy is not None:
            self.envoy.stop()
        if self.echo_proc is not None and self.echo_proc.poll() is None:
            self.echo_proc.terminate()
            try:
                self.echo_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.echo_proc.kill()
                self.echo_proc.wait(5)
        if self.source is not None:
            self.source.stop()


def short(e: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in e.items() if k != "exp")


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


# ------------------------------------------------------------------- echo


def serve_echo() -> int:
    """Child process: the echo upstream, forgetting its records every second."""
    server = EchoServer()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by PID
    print(f"echo listening on {HOST}:{server.port}", flush=True)
    while not done.wait(1.0):
        server.reset()
    server.stop()
    return 0


# ------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600, help="seconds of traffic (default 600)")
    p.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    p.add_argument("--fresh", type=float, default=0.1, help="share of requests on a fresh connection (default 0.1)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default: 60, or 10 %% of a shorter run)")
    p.add_argument("--rss-interval", type=float, default=10, help="seconds between RSS samples (default 10)")
    p.add_argument("--rss-limit", type=float, default=5.0, help="allowed RSS growth after warm-up, %% (default 5)")
    p.add_argument("--poll-interval", type=int, default=1, help="the service's poll_interval_s (default 1)")
    p.add_argument("--timeout-ms", type=int, default=500, help="the service's timeout_ms (default 500)")
    p.add_argument("--max-stale", type=int, default=30, help="revocation.max_stale_s (default 30)")
    p.add_argument("--grace", type=float, default=None, help="seconds a list change may take to be enforced (default poll_interval_s + 1, docs/revocation.md: Polling and the hand-over to workers)")
    p.add_argument("--fault-rate", type=float, default=0.35, help="chance that a list change is preceded by a source fault (default 0.35)")
    p.add_argument("--subjects", type=int, default=600, help="distinct subjects (default 600)")
    p.add_argument("--tokens", type=int, default=2400, help="valid tokens minted at the start (default 2400)")
    p.add_argument("--request-timeout", type=float, default=5.0, help="client timeout per request, s (default 5)")
    p.add_argument("--seed", type=int, default=None, help="random seed for the mix and the list changes")
    p.add_argument("--out", help="directory for the run's files (default .run/soak-<time>)")
    p.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_echo:
        return serve_echo()
    if args.duration <= 0 or args.duration > 80000:
        p.error("--duration must be in (0, 80000] seconds")
    if args.grace is None:
        args.grace = args.poll_interval + 1.0

    soak = Soak(args)
    hard_deadline = args.duration + 240  # setup, warm check, shutdown, report

    def on_signal(signum: int, _frame: Any) -> None:
        if not soak.interrupted:
            print(f"soak: signal {signum}: stopping", file=sys.stderr)
        soak.interrupted = True
        soak.stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def watchdog() -> None:
        time.sleep(hard_deadline)
        print(f"soak: still running after {hard_deadline:.0f} s: stopping everything", file=sys.stderr)
        try:
            soak.cleanup()
        finally:
            os._exit(1)

    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()
    try:
        return soak.run()
    except Exception as err:  # noqa: BLE001 - one line, then the cleanup
        print(f"soak: FAIL: {type(err).__name__}: {err}", file=sys.stderr)
        if soak.envoy is not None:
            print(harness.tail(soak.envoy.log_text(), 20), file=sys.stderr)
        return 1
    finally:
        soak.cleanup()


if __name__ == "__main__":
    sys.exit(main())
