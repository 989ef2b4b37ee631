"""Per-subject quotas: Envoy's rate limit filters after tokengate, keyed on
the verified subject header (docs/quotas.md, "Per-subject quotas").

The Envoy configuration is the YAML of docs/quotas.md itself, read from the
page's marked blocks (``<!-- quotas:NAME -->`` before a fenced ``yaml``
block), so the page cannot drift from what runs here.

* The local variant (docs/quotas.md, "The local variant: Envoy's
  `local_ratelimit`"), as the page has it, behind tokengate in a real
  Envoy: subject A gets 429 past its bucket while subject B still passes;
  A's requests carrying forged ``x-auth-subject: B`` headers (and
  ``X-AUTH-SUBJECT``, ``x_auth_subject``, ``X-Auth_Subject`` spellings),
  refused requests with the forged header, and anonymous requests with it
  spend nothing of B's bucket; requests without a subject are not limited by
  the per-subject buckets.
* The shared bucket of requests without a subject (docs/quotas.md,
  "Requests without a subject"): the same block with only the default
  bucket's size made small enough to exhaust in a test.
* The global variant (docs/quotas.md, "The global variant: Envoy's
  `ratelimit` and a rate limit service"): validated with tokengate by
  ``envoy --mode validate``; the service's domain and descriptor key are
  the filter's; in a running Envoy whose rate limit service is down,
  requests with a subject call it (and pass: ``failure_mode_deny: false``)
  and anonymous ones do not.

Bucket bounds: a bucket starts full (``max_tokens``) and refills by
``tokens_per_fill`` every ``fill_interval``; the count of 200s before the
first 429 is checked against ``max_tokens`` plus what can have been refilled
in the measured elapsed time, never against a wall-clock deadline.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import free_port, mint
from servers import EchoServer

QUOTAS_PAGE = harness.REPO / "docs" / "quotas.md"

ALICE, BOB = "alice", "bob"
# Every spelling of the subject header a client might try; tokengate removes
# them all (docs/responses.md, "What the upstream receives").
FORGED_NAMES = ["x-auth-subject", "X-AUTH-SUBJECT", "x_auth_subject", "X-Auth_Subject"]


def doc_block(name: str, page: Path = QUOTAS_PAGE) -> Any:
    """The YAML block of ``page`` marked ``<!-- quotas:NAME -->``, parsed."""
    import yaml

    text = page.read_text(encoding="utf-8")
    m = re.search(r"<!-- quotas:" + re.escape(name) + r" -->\s*\n```yaml\n(.*?)\n```", text, re.DOTALL)
    assert m, f"{page.name} has no ```yaml block marked <!-- quotas:{name} -->"
    return yaml.safe_load(m.group(1))


def filter_entry(name: str) -> dict[str, Any]:
    """A marked block that is one HTTP filter entry (a one-item YAML list)."""
    block = doc_block(name)
    assert isinstance(block, list) and len(block) == 1, f"quotas:{name} is not one list item"
    return dict(block[0])


def gate_config() -> dict[str, Any]:
    """orders-api without revocation (no list source needed here): `sub` goes to
    x-auth-subject, /healthz is anonymous, GET /orders needs orders:read."""
    config = harness.orders_api()
    del config["revocation"]
    assert config["claims_to_headers"]["sub"] == "x-auth-subject"
    return config


def token(sub: str | None) -> str:
    """A valid orders-api token with the given subject (None: no `sub` claim)."""
    key = harness.orders_api()["keys"][0]
    claims: dict[str, Any] = {"iss": "https://auth.example.com", "aud": "orders-api", "scope": "orders:read"}
    if sub is not None:
        claims["sub"] = sub
    return mint(key["secret"], kid=key["kid"], **claims)


def start_gate(envoys: Any, echo: EchoServer, limiter: dict[str, Any], **kw: Any) -> harness.Envoy:
    config = harness.bootstrap(
        listener_port=free_port(),
        admin_port=free_port(),
        upstream_port=echo.port,
        http_filters=[harness.tokengate_filter(gate_config()), limiter],
        **kw,
    )
    return envoys.start(config)


def bucket(entry: dict[str, Any], descriptor_key: str | None) -> dict[str, Any]:
    """The token bucket of the descriptor with ``descriptor_key`` (None: the default bucket)."""
    config = entry["typed_config"]
    if descriptor_key is None:
        return dict(config["token_bucket"])
    for d in config["descriptors"]:
        if [e["key"] for e in d["entries"]] == [descriptor_key]:
            assert all("value" not in e for e in d["entries"]), "a per-subject entry carries no value"
            return dict(d["token_bucket"])
    raise AssertionError(f"no descriptor for {descriptor_key!r}")


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def refill_bound(tb: dict[str, Any], elapsed_s: float) -> int:
    """The most a bucket can have handed out in ``elapsed_s`` from full."""
    fills = int(elapsed_s / seconds(tb["fill_interval"])) + 1
    return int(tb["max_tokens"]) + fills * int(tb.get("tokens_per_fill", 1))


def spend_until_429(gate: harness.Envoy, path: str, headers_for: Any, limit: int) -> tuple[int, float, Any]:
    """Send requests (headers from ``headers_for(i)``) until the first 429 or
    ``limit`` requests: (200s before it, seconds taken, the 429 response or None)."""
    ok = 0
    t0 = time.monotonic()
    for i in range(limit):
        r = gate.request("GET", path, headers_for(i))
        if r.status == 429:
            return ok, time.monotonic() - t0, r
        assert r.status == 200, f"request {i}: {r.status} {r.text[:200]}"
        ok += 1
    return ok, time.monotonic() - t0, None


def test_the_documented_local_filter_limits_each_subject_and_no_client_spends_another_subjects_quota(envoys, echo_server, wasm_path):
    limiter = filter_entry("local-filter")
    assert limiter["name"] == "envoy.filters.http.local_ratelimit"
    per_subject = bucket(limiter, "subject")
    quota = int(per_subject["max_tokens"])
    gate = start_gate(envoys, echo_server, limiter)

    # A spends its quota, every request carrying a forged subject B in one
    # spelling or another: tokengate removes them and sets A's own subject.
    alice = token(ALICE)

    def alice_forging(i: int) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {alice}"), (FORGED_NAMES[i % len(FORGED_NAMES)], BOB)]

    echo_server.reset()
    ok_a, took_a, refused = spend_until_429(gate, "/orders/1", alice_forging, quota * 3)
    assert refused is not None, f"subject {ALICE} was never limited after {ok_a} requests"
    assert quota <= ok_a <= refill_bound(per_subject, took_a), (ok_a, took_a, per_subject)
    assert refused.text.strip() == "local_rate_limited"
    assert refused.header("x-ratelimit-limit") is not None
    seen = {tuple(sorted((k, v) for k, v in req["header_list"] if "auth" in k and "subject" in k)) for req in echo_server.requests}
    assert seen == {(("x-auth-subject", ALICE),)}, f"the upstream saw subject headers {seen}"
    assert echo_server.count == ok_a

    # Still limited (the 429 was no accident).
    assert gate.request("GET", "/orders/1", alice_forging(0)).status == 429

    # Refused by tokengate (no token, a bad one): never reach the limiter.
    for i, name in enumerate(FORGED_NAMES * 3):
        auth = [] if i % 2 else [("authorization", f"Bearer {alice[:-4]}AAAA")]
        r = gate.request("GET", "/orders/1", [*auth, (name, BOB)])
        assert r.status == 401, r.text
    # Anonymous route with the forged header: no subject, the shared bucket,
    # and more requests than a subject's quota all pass.
    for i in range(quota + 5):
        r = gate.request("GET", "/healthz", [(FORGED_NAMES[i % len(FORGED_NAMES)], BOB)])
        assert r.status == 200, (i, r.status, r.text[:200])
    # A token without `sub`: no subject either.
    nosub = token(None)
    for _ in range(5):
        assert gate.request("GET", "/orders/2", [("authorization", f"Bearer {nosub}")]).status == 200

    # B's bucket is untouched: all of B's quota, then 429.
    bob = token(BOB)
    ok_b, took_b, refused_b = spend_until_429(gate, "/orders/3", lambda i: [("authorization", f"Bearer {bob}")], quota * 3)
    assert refused_b is not None
    assert quota <= ok_b <= refill_bound(per_subject, took_b), (ok_b, took_b, per_subject)

    # A third subject's first answer carries its own bucket in the draft-03 headers.
    carol = gate.request("GET", "/orders/4", [("authorization", f"Bearer {token('carol')}")])
    assert carol.status == 200
    assert (carol.header("x-ratelimit-limit"), carol.header("x-ratelimit-remaining")) == (str(quota), str(quota - 1))

    stats = gate.stats()
    assert stats["tokengate_quota.http_local_rate_limit.enforced"] >= 3
    limited = r'(?m)^envoy_http_local_rate_limit_rate_limited\{envoy_local_http_ratelimit_prefix="tokengate_quota"\} [1-9]'
    assert re.search(limited, gate.prometheus())
    assert stats["wasmcustom.tokengate.denied.malformed"] + stats.get("wasmcustom.tokengate.denied.bad_signature", 0) + stats[
        "wasmcustom.tokengate.denied.missing"
    ] == len(FORGED_NAMES) * 3


def test_requests_without_a_subject_share_the_default_bucket(envoys, echo_server, wasm_path):
    """The documented block with only the default bucket shrunk (1,000 per
    second cannot be exhausted here): anonymous requests and tokens without
    `sub` draw from one bucket; subjects keep their own."""
    limiter = filter_entry("local-filter")
    shared = {"max_tokens": 5, "tokens_per_fill": 5, "fill_interval": "60s"}
    limiter = copy.deepcopy(limiter)
    limiter["typed_config"]["token_bucket"] = shared
    # A descriptor's fill interval must be a multiple of the default's.
    limiter["typed_config"]["descriptors"][0]["token_bucket"]["fill_interval"] = "60s"
    gate = start_gate(envoys, echo_server, limiter)

    nosub = token(None)
    statuses: list[int] = []
    # 5 tokens, plus at most one refill of 5 if a fill fell inside.
    for i in range(2 * shared["max_tokens"] + 1):
        if i % 2:
            statuses.append(gate.request("GET", "/orders/1", [("authorization", f"Bearer {nosub}")]).status)
        else:
            statuses.append(gate.request("GET", "/healthz", [("x-auth-subject", BOB)]).status)
        if statuses[-1] == 429:
            break
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429, statuses
    # Subject B was not touched by any of it.
    bob = token(BOB)
    assert gate.request("GET", "/orders/1", [("authorization", f"Bearer {bob}")]).status == 200


def global_bootstrap(echo_port: int, ratelimit_port: int | None = None) -> dict[str, Any]:
    """tokengate + the documented global filter + the documented cluster
    (its address moved to a closed port on 127.0.0.1 when ``ratelimit_port``)."""
    limiter = filter_entry("global-filter")
    clusters = doc_block("global-cluster")
    assert isinstance(clusters, list) and len(clusters) == 1
    rl_cluster = copy.deepcopy(clusters[0])
    if ratelimit_port is not None:
        rl_cluster["type"] = "STATIC"
        address = rl_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        address.update(address=harness.HOST, port_value=ratelimit_port)
    return harness.bootstrap(
        listener_port=free_port(),
        admin_port=free_port(),
        upstream_port=echo_port,
        http_filters=[harness.tokengate_filter(gate_config()), limiter],
        clusters=[rl_cluster],
    )


def test_the_documented_global_variant_is_valid_and_matches_the_service_configuration(wasm_path):
    ok, output = harness.validate(global_bootstrap(free_port()))
    assert ok, output
    limiter = filter_entry("global-filter")["typed_config"]
    service = doc_block("ratelimit-service")
    assert service["domain"] == limiter["domain"]
    keys = [a["request_headers"]["descriptor_key"] for rl in limiter["rate_limits"] for a in rl["actions"]]
    assert keys == ["subject"]
    (descriptor,) = service["descriptors"]
    assert descriptor["key"] == "subject" and "value" not in descriptor, descriptor
    assert descriptor["rate_limit"]["unit"] in {"second", "minute", "hour", "day"}
    assert limiter["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] == doc_block("global-cluster")[0]["name"]
    # The local block is valid on its own too (validate runs tokengate's on_configure).
    local = harness.bootstrap(listener_port=free_port(), admin_port=free_port(), upstream_port=free_port(),
                              http_filters=[harness.tokengate_filter(gate_config()), filter_entry("local-filter")])  # fmt: skip
    ok, output = harness.validate(local)
    assert ok, output


def test_the_global_filter_asks_the_service_only_for_requests_with_a_subject(envoys, echo_server, wasm_path):
    """The rate limit service is down (a closed port): with the documented
    ``failure_mode_deny: false`` requests go through; Envoy counts one failed
    call per request with a subject and none for anonymous ones."""
    gate = envoys.start(global_bootstrap(echo_server.port, ratelimit_port=free_port()))
    alice = token(ALICE)
    for _ in range(3):
        assert gate.request("GET", "/orders/1", [("authorization", f"Bearer {alice}")]).status == 200
    for _ in range(4):
        assert gate.request("GET", "/healthz", [("x-auth-subject", BOB)]).status == 200

    def errors() -> float:
        return float(gate.stats().get("cluster.upstream.ratelimit.error", 0))

    harness.wait_until(lambda: errors() >= 3, timeout=5, what="three failed rate limit calls")
    time.sleep(0.3)
    assert errors() == 3
    assert gate.stats().get("cluster.upstream.ratelimit.failure_mode_allowed", 0) == 3
