"""tokengate in a real Envoy: the decision, the request edits, the responses,
the counters and the access log, as docs/configuration.md, docs/responses.md
and docs/telemetry.md describe them.

One Envoy (two workers) serves the whole module. It has four listeners, each
with its own tokengate filter configuration, all routed to one echo upstream
on 127.0.0.1:

* ``main``: the configuration ``GATE`` below, the orders-api fixture
  (``tests/data/orders-api.json``) with the few changes ``_gate`` lists;
* ``fwd``: ``GATE`` with ``forward_token: true``;
* ``tls``: ``GATE`` with ``require_tls: true`` (on a plain listener);
* ``revdeny``: ``GATE`` with the fixture's own revocation policy, which
  denies while no list has arrived (no revocation service is configured, so
  none ever does).

The echo server records every request, so each refusal also asserts that
the upstream never saw it.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import harness
from harness import Envoy, RawResponse, free_port, wait_until
from servers import EchoServer

# The orders-api fixture (tests/data/orders-api.json) every suite shares.
ORDERS = harness.orders_api()
ISS = ORDERS["issuers"][0]
AUD = ORDERS["audiences"][0]
REALM = ORDERS["realm"]
# The fixture's static revocation entries.
REVOKED_JTI = next(e["jti"] for e in ORDERS["revocation"]["static"] if "jti" in e)
REVOKED_SUB = next(e["sub"] for e in ORDERS["revocation"]["static"] if "sub" in e)

# The fixture's keys; their secrets reach the VM through
# vm_config.environment_variables (secret_env) instead of inline.
KEYS = {k["kid"]: k["secret"] for k in ORDERS["keys"]}
KEY_ENV = {kid: "TG_E2E_GATE_KEY_" + kid.replace("-", "_") for kid in KEYS}
ALGS = {k["kid"]: k["alg"] for k in ORDERS["keys"]}


def _gate() -> dict[str, Any]:
    """The fixture with what this module needs on top: secrets by
    ``secret_env``; the ``tenant`` claim forwarded too (a number, an object);
    ``/api`` instead of the catch-all ``/``, so a path no rule names is
    ``no_rule``; and ``on_unavailable: allow``, since no revocation service
    runs (the ``revdeny`` listener keeps the fixture's ``deny``)."""
    config = harness.orders_api()
    config["keys"] = [{"kid": k["kid"], "alg": k["alg"], "secret_env": KEY_ENV[k["kid"]]} for k in config["keys"]]
    config["claims_to_headers"]["tenant"] = "x-auth-tenant"
    catch_all = config["rules"].pop()
    assert catch_all == {"match": {"prefix": "/"}}, catch_all
    config["rules"].append({"match": {"prefix": "/api"}})
    config["revocation"]["on_unavailable"] = "allow"
    return config


GATE: dict[str, Any] = _gate()

LISTENER_CONFIGS: dict[str, dict[str, Any]] = {
    "main": GATE,
    "fwd": {**GATE, "forward_token": True},
    "tls": {**GATE, "require_tls": True},
    "revdeny": {**GATE, "revocation": ORDERS["revocation"]},
}

CLAIM_HEADERS = sorted(GATE["claims_to_headers"].values())

# docs/responses.md, "Reasons and status codes": reason → (status, RFC 6750 error)
REASONS = {
    "bad_request": (400, "invalid_request"),
    "missing": (401, None),
    "malformed": (401, "invalid_token"),
    "unknown_key": (401, "invalid_token"),
    "bad_signature": (401, "invalid_token"),
    "expired": (401, "invalid_token"),
    "not_yet_valid": (401, "invalid_token"),
    "lifetime_too_long": (401, "invalid_token"),
    "wrong_issuer": (401, "invalid_token"),
    "wrong_audience": (401, "invalid_token"),
    "revoked": (401, "invalid_token"),
    "binding_mismatch": (401, "invalid_token"),
    "wrong_token_type": (401, "invalid_token"),
    "tls_required": (403, "invalid_request"),
    "insufficient_scope": (403, "insufficient_scope"),
    "denied": (403, "access_denied"),
    "no_rule": (403, "access_denied"),
    "revocation_unavailable": (503, "temporarily_unavailable"),
    "internal": (500, "server_error"),
}

# Every token this module sends, so the log test can look for any of them.
SENT_TOKENS: list[str] = []

# What a dead or crashed VM leaves in Envoy's log.
CRASH_MARKERS = ("panicked", "Wasm VM failed", "wasm vm failed", "Uncaught RuntimeError", "unreachable", "vm_reload")


# ----------------------------------------------------------------- local helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tok(
    kid: str | None = "2026-11",
    *,
    key: str | None = None,
    alg: str | None = None,
    ttl: int = 600,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A PyJWT token valid for GATE unless the arguments say otherwise (pass a claim as None to leave it out)."""
    claims.setdefault("sub", "alice")
    claims.setdefault("iss", ISS)
    claims.setdefault("aud", AUD)
    secret = key if key is not None else KEYS[kid or "2026-11"]
    token = harness.mint(secret, kid=kid, alg=alg or ALGS.get(kid or "", "HS256"), ttl=ttl, headers=headers, **claims)
    SENT_TOKENS.append(token)
    return token


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def flip_signature_bit(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0x01
    bad = f"{head}.{payload}.{b64url(bytes(raw))}"
    SENT_TOKENS.append(bad)
    return bad


def at(envoy: Envoy, port: int) -> Envoy:
    """A view of ``envoy`` whose requests go to another of its listeners (never stop the view)."""
    view = copy.copy(envoy)
    view.listener_port = port
    return view


def parse_challenge(value: str) -> dict[str, str]:
    """``Bearer realm="x", error="y"`` → {"realm": "x", "error": "y"}; asserts the shape."""
    assert value.startswith("Bearer "), value
    rest = value[len("Bearer ") :]
    pair = r'\s*([a-z_]+)="([^"\\]*)"\s*'
    assert re.fullmatch(rf"{pair}(,{pair})*", rest), f"not a list of auth-params: {value!r}"
    names = re.findall(r'([a-z_]+)="', rest)
    assert len(names) == len(set(names)), f"repeated auth-param: {value!r}"
    return dict(re.findall(r'([a-z_]+)="([^"\\]*)"', rest))


def assert_refusal(resp: RawResponse, reason: str, *, scope: str | None = None, realm: str = REALM, token: str | None = None) -> dict[str, Any]:
    """The refusal of docs/responses.md for ``reason``: status, www-authenticate, content-type, JSON body."""
    status, error = REASONS[reason]
    assert resp.status == status, f"{reason}: want {status}, got {resp.status} {resp.text!r}"
    ctype = resp.header("content-type")
    assert ctype is not None and ctype.split(";")[0].strip() == "application/json", f"{reason}: content-type {ctype!r}"
    # no cache (a shared one included) may keep a refusal and replay it
    assert resp.header("cache-control") == "no-store", f"{reason}: cache-control {resp.header('cache-control')!r}"
    assert resp.header("pragma") == "no-cache", f"{reason}: pragma {resp.header('pragma')!r}"
    body = resp.json()
    assert set(body) == {"error", "reason", "error_description"}, f"{reason}: body {body!r}"
    assert body["reason"] == reason, body
    assert body["error"] == (error or "unauthorized"), body
    assert isinstance(body["error_description"], str) and body["error_description"], body
    www = resp.header("www-authenticate")
    if status == 401 or reason == "insufficient_scope":
        assert www is not None, f"{reason}: a www-authenticate challenge is required"
        params = parse_challenge(www)
        assert params.get("realm") == realm, www
        if error is None:
            assert "error" not in params and "error_description" not in params, f"{reason}: {www!r}"
        else:
            assert params.get("error") == error, www
            assert params.get("error_description"), www
        if reason == "insufficient_scope" and scope is not None:
            assert params.get("scope") == scope, www
        else:
            assert "scope" not in params, f"{reason}: no scope attribute expected: {www!r}"
    else:
        assert www is None, f"{reason} ({status}) must not carry www-authenticate, got {www!r}"
    if token:
        for part in [token, *token.split(".")[1:]]:
            assert part not in resp.text and part not in (www or ""), f"{reason}: the response echoes token content"
    return body


class KeepAlive:
    """One HTTP/1.1 connection on which raw requests are sent one after another."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((harness.HOST, port), timeout=timeout)
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by Envoy")
        self.buf += chunk

    def exchange(self, request: bytes) -> RawResponse:
        """Send one request (bytes, verbatim) and read one response (content-length framed)."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [(k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
        length = int(next((v for k, v in headers if k == "content-length"), "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return RawResponse(status, headers, body)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "KeepAlive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_get(path: bytes, headers: list[tuple[bytes, bytes]] = (), host: bytes = b"gate.test") -> bytes:  # type: ignore[assignment]
    lines = [b"GET " + path + b" HTTP/1.1", b"host: " + host] + [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def prom_counters(envoy: Envoy) -> dict[str, float]:
    """The tokengate_* samples of /stats/prometheus, by metric name (labels dropped: there are none)."""
    out: dict[str, float] = {}
    for line in envoy.prometheus().splitlines():
        m = re.match(r"^(tokengate_[a-z0-9_]+)(?:\{\})? ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class Gate:
    """The module's Envoy and its listeners."""

    def __init__(self, envoy: Envoy, ports: dict[str, int], echo: EchoServer) -> None:
        self.envoy = envoy
        self.ports = ports
        self.echo = echo
        self.views = {name: at(envoy, port) for name, port in ports.items()}

    def request(self, method: str, path: str, headers: Any = (), listener: str = "main", **kw: Any) -> RawResponse:
        return self.views[listener].request(method, path, headers=headers, **kw)

    def get(self, path: str, headers: Any = (), listener: str = "main") -> RawResponse:
        return self.request("GET", path, headers, listener)


def build_bootstrap(admin_port: int, upstream_port: int, ports: dict[str, int]) -> dict[str, Any]:
    """harness.bootstrap() for the first listener, then copies of its listener for the others."""
    names = list(ports)
    first = names[0]
    config = harness.bootstrap(
        listener_port=ports[first],
        admin_port=admin_port,
        upstream_port=upstream_port,
        http_filters=[harness.tokengate_filter(LISTENER_CONFIGS[first], name=f"tokengate-{first}")],
    )
    listeners = config["static_resources"]["listeners"]
    template = listeners[0]
    for name in names[1:]:
        listener = copy.deepcopy(template)
        listener["name"] = name
        listener["address"]["socket_address"]["port_value"] = ports[name]
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["stat_prefix"] = name
        manager["http_filters"] = [
            harness.tokengate_filter(LISTENER_CONFIGS[name], name=f"tokengate-{name}"),
            harness.router_filter(),
        ]
        listeners.append(listener)
    return config


@pytest.fixture(scope="module")
def gate(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        ports = {name: free_port() for name in LISTENER_CONFIGS}
        config = build_bootstrap(free_port(), echo.port, ports)
        envoy = Envoy(
            config,
            env={KEY_ENV[kid]: secret for kid, secret in KEYS.items()},
            concurrency=2,
            workdir=tmp_path_factory.mktemp("gate-envoy"),
            # the plugin's own debug lines (refusals) are logged too: they must not hold tokens either
            extra_args=("--component-log-level", "wasm:debug"),
        )
        yield Gate(envoy, ports, echo)
    finally:
        if envoy is not None:
            envoy.stop()  # SIGTERM/SIGKILL by PID
            assert envoy.proc is None or envoy.proc.poll() is not None
        echo.stop()


# ------------------------------------------------------------- claim forwarding


def test_claim_headers_carry_verified_claims_and_effective_scopes(gate: Gate) -> None:
    token = tok(
        sub="alice",
        jti="jti-claims-1",
        scope="orders:read",
        scp=["reports:read", "orders:read"],
        roles=["manager"],
        tenant=42,
    )
    spoofed = [("x-auth-subject", "root"), ("x-auth-scopes", "*"), ("x-auth-token-id", "forged"), ("x-auth-tenant", "7"), ("x-auth-role", "admin")]
    r = gate.get("/api/claims", bearer(token) + spoofed)
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-auth-subject"] == "alice"
    assert seen["x-auth-token-id"] == "jti-claims-1"
    assert seen["x-auth-tenant"] == "42"
    # scope, then scp, then the roles' scopes, without repeats
    assert seen["x-auth-scopes"] == "orders:read reports:read orders:write"
    # no role claim (roles is another one): the forged x-auth-role is gone and none is set
    assert "x-auth-role" not in seen
    # each header exactly once: the forged values are gone, not joined
    names = [k for k, _ in r.json()["header_list"]]
    for name in CLAIM_HEADERS:
        assert names.count(name) == (0 if name == "x-auth-role" else 1), name


def test_absent_claims_set_no_header_and_forged_ones_are_dropped(gate: Gate) -> None:
    token = tok(sub="bob", jti="jti-claims-2", scope=None)
    spoofed = [("x-auth-scopes", "orders:write"), ("x-auth-tenant", "1")]
    r = gate.get("/api/noscope", bearer(token) + spoofed)
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-auth-subject"] == "bob"
    assert "x-auth-scopes" not in seen  # no granted scope at all
    assert "x-auth-tenant" not in seen  # claim absent
    # a claim of another type (an object) sets no header either
    token = tok(sub="bob", jti="jti-claims-3", tenant={"id": 42})
    r = gate.get("/api/objclaim", bearer(token) + [("x-auth-tenant", "1")])
    assert r.status == 200, r.text
    assert "x-auth-tenant" not in r.json()["headers"]


def test_role_scopes_satisfy_rules(gate: Gate) -> None:
    manager = tok(sub="mgr", roles=["manager"], scope=None)
    r = gate.request("POST", "/orders/7", bearer(manager))
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-scopes"] == "orders:read orders:write reports:read"
    admin = tok(sub="root", role="admin", scope=None)
    assert gate.get("/admin/panel", bearer(admin)).status == 200
    assert gate.request("DELETE", "/orders/7", bearer(admin)).status == 200  # "*" grants everything


# ---------------------------------------------------------------- token removal


def test_token_header_removed_before_upstream(gate: Gate) -> None:
    r = gate.get("/api/h", bearer(tok()))
    assert r.status == 200, r.text
    assert "authorization" not in r.json()["headers"]
    r = gate.get("/api/k", [("x-api-key", tok())])
    assert r.status == 200, r.text
    assert "x-api-key" not in r.json()["headers"]
    # a non-Bearer Authorization yields no token and is left alone
    r = gate.get("/api/basic", [("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", tok())])
    assert r.status == 200, r.text
    assert r.json()["headers"]["authorization"] == "Basic dXNlcjpwYXNz"
    assert "x-api-key" not in r.json()["headers"]


def test_token_query_parameter_cut_out_other_params_kept(gate: Gate) -> None:
    token = tok()
    r = gate.get(f"/api/q?a=1&access_token={token}&b=two%20words&c")
    assert r.status == 200, r.text
    assert r.json()["path"] == "/api/q?a=1&b=two%20words&c"
    r = gate.get(f"/api/q?access_token={tok()}")
    assert r.status == 200, r.text
    assert r.json()["path"] in ("/api/q", "/api/q?")
    assert "access_token" not in r.json()["path"]


def test_token_cookie_cut_out_other_cookies_kept(gate: Gate) -> None:
    r = gate.get("/api/c", [("cookie", f"theme=dark; tg_token={tok()}; lang=en")])
    assert r.status == 200, r.text
    assert r.json()["headers"]["cookie"] == "theme=dark; lang=en"
    r = gate.get("/api/c", [("cookie", f"tg_token={tok()}")])
    assert r.status == 200, r.text
    assert "tg_token" not in json.dumps(r.json()["headers"])


def test_token_cut_from_several_cookie_lines(gate: Gate) -> None:
    # HTTP/1.1 clients may send several Cookie lines; the token goes, every other cookie stays
    token = tok(sub="lines")
    r = gate.get("/api/cookie-lines", [("cookie", "a=1"), ("cookie", f"tg_token={token}; b=2"), ("cookie", "c=3")])
    assert r.status == 200, r.text
    lines = [v for k, v in r.json()["header_list"] if k == "cookie"]
    pairs = [p.strip() for line in lines for p in line.split(";") if p.strip()]
    assert sorted(pairs) == ["a=1", "b=2", "c=3"], lines
    assert r.json()["headers"]["x-auth-subject"] == "lines"


def test_token_removed_on_anonymous_route_too(gate: Gate) -> None:
    # anonymous: the token is not checked (even a garbage one), but never goes upstream
    r = gate.get("/healthz/a", [("authorization", "Bearer not-even-a-jwt")])
    assert r.status == 200, r.text
    assert "authorization" not in r.json()["headers"]
    r = gate.get("/healthz/a", [("x-api-key", tok())])
    assert r.status == 200, r.text
    assert "x-api-key" not in r.json()["headers"]
    r = gate.get("/healthz/b?x=1&access_token=garbage")
    assert r.status == 200, r.text
    assert r.json()["path"] == "/healthz/b?x=1"
    r = gate.get("/healthz/c", [("cookie", "a=1; tg_token=garbage; b=2")])
    assert r.status == 200, r.text
    assert r.json()["headers"]["cookie"] == "a=1; b=2"


# Several tokens at once on an anonymous route. The rule decides first (anonymous: "no
# token needed, the token is not checked"), and with forward_token false "the token is
# removed from the request before it goes upstream ... on every route, anonymous ones
# included" (docs/configuration.md, "Token sources and forwarding"): none of them may reach the upstream.
ANON_SEVERAL = {
    "query_and_authorization": (lambda a, b: (f"/healthz/several?x=1&access_token={a}", bearer(b))),
    "query_param_twice": (lambda a, b: (f"/healthz/several?x=1&access_token={a}&access_token={b}", [])),
    "cookie_twice": (lambda a, b: ("/healthz/several?x=1", [("cookie", f"tg_token={a}; c=1; tg_token={b}")])),
    "two_authorization_headers": (lambda a, b: ("/healthz/several?x=1", [("authorization", f"Bearer {a}"), ("authorization", f"Bearer {b}")])),
}


@pytest.mark.parametrize("case", list(ANON_SEVERAL))
def test_every_token_removed_on_anonymous_route_even_several(gate: Gate, case: str) -> None:
    t1, t2 = tok(sub="several-1"), tok(sub="several-2")
    path, headers = ANON_SEVERAL[case](t1, t2)
    r = gate.get(path, headers)
    assert r.status == 200, r.text
    seen = r.json()
    assert "authorization" not in seen["headers"], "an Authorization token reached the upstream"
    assert seen["path"] == "/healthz/several?x=1", "a query token reached the upstream"
    assert "tg_token" not in seen["headers"].get("cookie", ""), "a cookie token reached the upstream"
    assert t1 not in json.dumps(seen) and t2 not in json.dumps(seen)


def test_spoofed_claim_headers_removed_on_every_request(gate: Gate) -> None:
    spoofed = [(h, "forged") for h in CLAIM_HEADERS]
    for listener in ("main", "fwd"):
        r = gate.get("/healthz/spoof", spoofed, listener=listener)
        assert r.status == 200, r.text
        seen = r.json()["headers"]
        for h in CLAIM_HEADERS:
            assert h not in seen, f"{listener}: {h} reached the upstream on an anonymous route"
    # an allowed request: only verified values (sub, jti, scope); tenant absent → removed
    r = gate.get("/api/spoof", bearer(tok(sub="carol", jti="jti-spoof", scope="a:b")) + spoofed)
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert (seen["x-auth-subject"], seen["x-auth-token-id"], seen["x-auth-scopes"]) == ("carol", "jti-spoof", "a:b")
    assert "x-auth-tenant" not in seen


def test_forward_token_true_keeps_the_token(gate: Gate) -> None:
    token = tok(sub="dave", jti="jti-fwd")
    r = gate.get("/api/f", bearer(token), listener="fwd")
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert seen["authorization"] == f"Bearer {token}"
    assert seen["x-auth-subject"] == "dave" and seen["x-auth-token-id"] == "jti-fwd"
    token = tok()
    r = gate.get(f"/api/f?a=1&access_token={token}&b=2", listener="fwd")
    assert r.status == 200, r.text
    assert r.json()["path"] == f"/api/f?a=1&access_token={token}&b=2"
    token = tok()
    r = gate.get("/api/f", [("cookie", f"a=1; tg_token={token}; b=2")], listener="fwd")
    assert r.status == 200, r.text
    assert r.json()["headers"]["cookie"] == f"a=1; tg_token={token}; b=2"
    r = gate.get("/healthz/f", bearer("anything"), listener="fwd")
    assert r.status == 200, r.text
    assert r.json()["headers"]["authorization"] == "Bearer anything"


# ---------------------------------------------------------- every refusal reason


def _now() -> int:
    return int(time.time())


Case = Callable[[], tuple[str, str, str, list[tuple[str, str]], str | None]]

# id → (reason, builder returning (listener, method, path, headers, token), scope attribute expected)
REFUSALS: dict[str, tuple[str, Case, str | None]] = {
    "bad_request-two_sources": ("bad_request", lambda: ("main", "GET", "/api/x", bearer(t := tok()) + [("x-api-key", t)], t), None),
    "bad_request-comma_in_authorization": (
        "bad_request",
        lambda: ("main", "GET", "/api/x", [("authorization", f"Bearer {(t := tok())}"), ("authorization", "Bearer other")], t),
        None,
    ),
    "bad_request-query_param_twice": ("bad_request", lambda: ("main", "GET", f"/api/x?access_token={(t := tok())}&access_token={t}", [], t), None),
    "bad_request-two_x_api_key_lines": ("bad_request", lambda: ("main", "GET", "/api/x", [("x-api-key", t := tok()), ("x-api-key", tok())], t), None),
    "bad_request-token_cookie_in_two_cookie_lines": (
        "bad_request",
        lambda: ("main", "GET", "/api/x", [("cookie", f"a=1; tg_token={(t := tok())}"), ("cookie", f"tg_token={tok()}; b=2")], t),
        None,
    ),
    "bad_request-cookie_twice": ("bad_request", lambda: ("main", "GET", "/api/x", [("cookie", f"tg_token={(t := tok())}; tg_token={t}")], t), None),
    "bad_request-invalid_escape_in_path": ("bad_request", lambda: ("main", "GET", "/healthz/%zz", [], None), None),
    "missing": ("missing", lambda: ("main", "GET", "/api/x", [], None), None),
    "missing-basic_scheme_is_no_token": ("missing", lambda: ("main", "GET", "/api/x", [("authorization", "Basic dXNlcjpwYXNz")], None), None),
    "malformed-not_a_jwt": ("malformed", lambda: ("main", "GET", "/api/x", bearer("not-a-jwt"), None), None),
    "malformed-two_segments": ("malformed", lambda: ("main", "GET", "/api/x", bearer(".".join((t := tok()).split(".")[:2])), t), None),
    "malformed-missing_required_jti": ("malformed", lambda: ("main", "GET", "/api/x", bearer(t := tok(jti=None)), t), None),
    "malformed-crit_header": ("malformed", lambda: ("main", "GET", "/api/x", bearer(t := tok(headers={"crit": ["exp"]})), t), None),
    "malformed-exp_is_a_string": ("malformed", lambda: ("main", "GET", "/api/x", bearer(t := tok(exp=str(_now() + 600))), t), None),
    "unknown_key-unknown_kid": ("unknown_key", lambda: ("main", "GET", "/api/x", bearer(t := tok("nope", key=KEYS["2026-11"])), t), None),
    "unknown_key-no_kid_with_several_keys": ("unknown_key", lambda: ("main", "GET", "/api/x", bearer(t := tok(None, key=KEYS["2026-11"])), t), None),
    "unknown_key-alg_differs_from_key": (
        "unknown_key",
        lambda: ("main", "GET", "/api/x", bearer(t := tok("2026-10", alg="HS256", key=KEYS["2026-10"])), t),
        None,
    ),
    "bad_signature-other_secret": ("bad_signature", lambda: ("main", "GET", "/api/x", bearer(t := tok(key=harness.new_key())), t), None),
    "bad_signature-bit_flipped": ("bad_signature", lambda: ("main", "GET", "/api/x", bearer(t := flip_signature_bit(tok())), t), None),
    "expired": ("expired", lambda: ("main", "GET", "/api/x", bearer(t := tok(iat=_now() - 1000, exp=_now() - 60)), t), None),
    "not_yet_valid-nbf": ("not_yet_valid", lambda: ("main", "GET", "/api/x", bearer(t := tok(nbf=_now() + 600)), t), None),
    "not_yet_valid-iat_in_future": (
        "not_yet_valid",
        lambda: ("main", "GET", "/api/x", bearer(t := tok(iat=_now() + 600, exp=_now() + 900)), t),
        None,
    ),
    "lifetime_too_long": ("lifetime_too_long", lambda: ("main", "GET", "/api/x", bearer(t := tok(ttl=ORDERS["max_lifetime_s"] + 3600)), t), None),
    "lifetime_too_long-no_iat": ("lifetime_too_long", lambda: ("main", "GET", "/api/x", bearer(t := tok(iat=None)), t), None),
    "wrong_issuer": ("wrong_issuer", lambda: ("main", "GET", "/api/x", bearer(t := tok(iss="https://evil.example.com")), t), None),
    "wrong_issuer-absent": ("wrong_issuer", lambda: ("main", "GET", "/api/x", bearer(t := tok(iss=None)), t), None),
    "wrong_audience": ("wrong_audience", lambda: ("main", "GET", "/api/x", bearer(t := tok(aud=["billing-api", "x"])), t), None),
    "revoked-static_jti": ("revoked", lambda: ("main", "GET", "/api/x", bearer(t := tok(jti=REVOKED_JTI)), t), None),
    "revoked-static_sub": ("revoked", lambda: ("main", "GET", "/api/x", bearer(t := tok(sub=REVOKED_SUB)), t), None),
    "wrong_token_type-rt_jwt": ("wrong_token_type", lambda: ("main", "GET", "/api/x", bearer(t := tok(headers={"typ": "rt+jwt"})), t), None),
    "tls_required": ("tls_required", lambda: ("tls", "GET", "/api/x", bearer(t := tok()), t), None),
    "insufficient_scope-scopes_rule": (
        "insufficient_scope",
        lambda: ("main", "POST", "/orders/7", bearer(t := tok(scope="orders:read")), t),
        "orders:write",
    ),
    "insufficient_scope-roles_rule": ("insufficient_scope", lambda: ("main", "GET", "/admin", bearer(t := tok(roles=["manager"])), t), None),
    "denied": ("denied", lambda: ("main", "GET", "/internal/x", bearer(t := tok(role="admin")), t), None),
    "denied-without_token": ("denied", lambda: ("main", "GET", "/internal", [], None), None),
    "no_rule": ("no_rule", lambda: ("main", "GET", "/nowhere", bearer(t := tok()), t), None),
    "no_rule-prefix_is_segment_aware": ("no_rule", lambda: ("main", "GET", "/internalx", [], None), None),
    "revocation_unavailable": ("revocation_unavailable", lambda: ("revdeny", "GET", "/api/x", bearer(t := tok()), t), None),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal(gate: Gate, case: str) -> None:
    reason, build, scope = REFUSALS[case]
    listener, method, path, headers, token = build()
    before = gate.echo.count
    r = gate.request(method, path, headers, listener=listener)
    assert_refusal(r, reason, scope=scope, token=token)
    assert gate.echo.count == before, f"{case}: the upstream saw a refused request"


def test_every_reason_but_binding_mismatch_and_internal_is_covered() -> None:
    # binding_mismatch needs mutual TLS (test_edge_features.py); internal needs
    # Envoy to refuse an edit, which no request can make it do.
    covered = {reason for reason, _, _ in REFUSALS.values()}
    assert covered == set(REASONS) - {"binding_mismatch", "internal"}


def test_tls_listener_without_token_is_missing_not_tls_required(gate: Gate) -> None:
    # the order of the checks: token present → single token → TLS
    r = gate.get("/api/x", listener="tls")
    assert_refusal(r, "missing")
    assert gate.get("/healthz/x", listener="tls").status == 200


# -------------------------------------------------------------------- counters


def test_prometheus_counters_exact_deltas_over_both_workers(gate: Gate) -> None:
    envoy = gate.envoy
    stats_before = envoy.stats()
    before = prom_counters(envoy)
    assert "tokengate_allowed" in before and "tokengate_denied_expired" in before, sorted(before)
    expected = {
        "tokengate_allowed": 9,
        "tokengate_anonymous": 5,
        "tokengate_denied_expired": 4,
        "tokengate_denied_bad_signature": 3,
        "tokengate_denied_missing": 2,
        "tokengate_denied_insufficient_scope": 2,
        "tokengate_denied_no_rule": 1,
        "tokengate_denied_denied": 1,
        "tokengate_denied_bad_request": 1,
        "tokengate_denied_malformed": 1,
        "tokengate_denied_unknown_key": 1,
        "tokengate_denied_revoked": 1,
        "tokengate_denied_tls_required": 1,
        "tokengate_denied_revocation_unavailable": 1,
    }
    good = tok(scope="orders:read")
    expired = tok(iat=_now() - 1000, exp=_now() - 60)
    forged = tok(key=harness.new_key())
    # every request on a fresh connection, so both workers take some
    for i in range(9):
        assert gate.get(f"/api/count/{i}", bearer(good)).status == 200
    for i in range(5):
        assert gate.get(f"/healthz/count/{i}").status == 200
    for _ in range(4):
        assert gate.get("/api/count", bearer(expired)).status == 401
    for _ in range(3):
        assert gate.get("/api/count", bearer(forged)).status == 401
    for _ in range(2):
        assert gate.get("/api/count").status == 401
    assert gate.request("POST", "/orders", bearer(good)).status == 403
    assert gate.get("/admin", bearer(good)).status == 403
    assert gate.get("/nowhere").status == 403
    assert gate.get("/internal/count").status == 403
    assert gate.get("/api/count", bearer(good) + [("x-api-key", good)]).status == 400
    assert gate.get("/api/count", bearer("a.b")).status == 401
    assert gate.get("/api/count", bearer(tok("k9", key=KEYS["2026-11"]))).status == 401
    assert gate.get("/api/count", bearer(tok(jti=REVOKED_JTI))).status == 401
    assert gate.get("/api/count", bearer(good), listener="tls").status == 403
    assert gate.get("/api/count", bearer(good), listener="revdeny").status == 503

    def settled() -> dict[str, float] | None:
        now = prom_counters(envoy)
        return now if now.get("tokengate_allowed", 0) - before.get("tokengate_allowed", 0) >= expected["tokengate_allowed"] else None

    after = wait_until(settled, 5, 0.1, "counters")
    deltas = {name: after[name] - before.get(name, 0) for name in after if not name.startswith("tokengate_revocation_")}
    assert set(expected) <= set(deltas), sorted(deltas)
    want = {name: float(expected.get(name, 0)) for name in deltas}
    assert deltas == want
    # every reason has its counter
    for reason in REASONS:
        assert f"tokengate_denied_{reason}" in after, reason
    # both workers took connections during this test: the counts are summed over them
    stats_after = envoy.stats()
    port = gate.ports["main"]
    per_worker = [
        stats_after.get(f"listener.127.0.0.1_{port}.worker_{w}.downstream_cx_total", 0)
        - stats_before.get(f"listener.127.0.0.1_{port}.worker_{w}.downstream_cx_total", 0)
        for w in (0, 1)
    ]
    assert all(n > 0 for n in per_worker), f"connections per worker: {per_worker}"
    # the same counts under /stats
    assert stats_after["wasmcustom.tokengate.denied.expired"] == after["tokengate_denied_expired"]


# ----------------------------------------------------------------- non-UTF-8


def test_non_utf8_bytes_are_decided_and_never_kill_the_vm(gate: Gate) -> None:
    envoy = gate.envoy
    port = gate.ports["main"]
    vm_active = envoy.stat("wasm.envoy.wasm.runtime.v8.active")
    before = gate.echo.count
    good = tok(sub="utf", jti="jti-utf")
    ok_request = raw_get(b"/api/after", [(b"authorization", b"Bearer " + good.encode())])
    with KeepAlive(port) as conn:
        r = conn.exchange(raw_get(b"/api/raw", [(b"authorization", b"Bearer \xff\xfe")]))
        assert_refusal(r, "malformed")
        r = conn.exchange(ok_request)
        assert r.status == 200, r.text
        r = conn.exchange(raw_get(b"/api/raw", [(b"x-api-key", b"\xc3\x28")]))
        assert_refusal(r, "malformed")
        r = conn.exchange(raw_get(b"/api/raw?access_token=%ff%fe"))
        assert_refusal(r, "malformed")
        r = conn.exchange(raw_get(b"/api/raw", [(b"cookie", b"tg_token=\xff\xfe")]))
        assert_refusal(r, "malformed")
        # an anonymous route with non-UTF-8 spoofed claim headers and token: removed, forwarded
        r = conn.exchange(raw_get(b"/healthz/raw", [(b"x-auth-subject", b"\xc3\x28"), (b"authorization", b"Bearer \xff")]))
        assert r.status == 200, r.text
        seen = r.json()["headers"]
        assert "x-auth-subject" not in seen and "authorization" not in seen
        r = conn.exchange(ok_request)
        assert r.status == 200, r.text
        assert r.json()["headers"]["x-auth-subject"] == "utf"
    assert gate.echo.count == before + 3
    # a non-UTF-8 host: refused (by Envoy's codec, 400, or by the filter), never forwarded
    out = envoy.raw(raw_get(b"/admin", [(b"authorization", b"Bearer \xc3\x28"), (b"connection", b"close")], host=b"h\xc3\x28.example.com"))
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 401"), out[:200]
    assert gate.echo.count == before + 3
    # a non-UTF-8 byte in the path: Envoy's codec refuses it (400) before any filter; nothing reaches the upstream
    out = envoy.raw(raw_get(b"/api/\xff\xfe", [(b"authorization", b"Bearer " + good.encode()), (b"connection", b"close")]))
    assert out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 401"), out[:200]
    assert gate.echo.count == before + 3
    # a new connection still works, on both workers
    for i in range(6):
        r = gate.get(f"/api/fresh/{i}", bearer(good))
        assert r.status == 200, r.text
    time.sleep(0.3)  # log flush interval is 100 ms
    log = envoy.log_text()
    for marker in CRASH_MARKERS:
        assert marker not in log, f"{marker!r} in Envoy's log:\n{harness.tail(log)}"
    stats = envoy.stats()
    assert stats["wasm.envoy.wasm.runtime.v8.active"] == vm_active
    reloads = {k: v for k, v in stats.items() if k.startswith("wasm.") and ("reload" in k or "fail" in k)}
    assert any("vm_reload" in k for k in reloads), sorted(stats)
    assert all(v == 0 for v in reloads.values()), reloads
    assert envoy.alive


def test_cookie_cut_keeps_other_cookies_byte_for_byte(gate: Gate) -> None:
    # "cookie cut out while other cookies remain": a non-UTF-8 byte in another
    # cookie must reach the upstream unchanged (the echo server reads headers as latin-1).
    port = gate.ports["main"]
    good = tok(sub="cookies")
    got = {}
    for path, token in ((b"/healthz/cookie-bytes", b"garbage"), (b"/api/cookie-bytes", good.encode())):
        with KeepAlive(port) as conn:
            r = conn.exchange(raw_get(path, [(b"cookie", b"a=caf\xe9; tg_token=" + token + b"; b=2")]))
        assert r.status == 200, r.text
        got[path.decode()] = r.json()["headers"]["cookie"].encode("latin-1")
    assert got == {"/healthz/cookie-bytes": b"a=caf\xe9; b=2", "/api/cookie-bytes": b"a=caf\xe9; b=2"}


# ---------------------------------------------------------------- path handling


def test_paths_are_matched_as_normalized(gate: Gate) -> None:
    before = gate.echo.count
    # Envoy normalizes first (normalize_path, merge_slashes): /healthz//..//admin → /healthz/admin
    r = gate.get("/healthz//..//admin")
    assert r.status == 200, r.text
    assert r.json()["path"] == "/healthz/admin"
    assert gate.echo.count == before + 1
    # the rest climb into /admin, /internal: matched there, never as /healthz
    assert_refusal(gate.get("/healthz/../admin"), "missing")
    assert_refusal(gate.get("/healthz/%2e%2e/admin"), "missing")
    assert_refusal(gate.get("/healthz/./../%61dmin/x"), "missing")
    assert_refusal(gate.get("/healthz/..//internal/x"), "denied")
    assert gate.echo.count == before + 1
    # escaped slashes: Envoy's REJECT_REQUEST answers 400 itself; the upstream never sees them
    for path in ("/healthz/..%2Fadmin", "/healthz/%2f..%2fadmin", "/healthz/a%5Cb"):
        r = gate.get(path)
        assert r.status == 400, (path, r.status, r.text)
    assert gate.echo.count == before + 1
    # an admin token reaches the normalized path
    r = gate.get("/healthz/../admin/x", bearer(tok(role="admin")))
    assert r.status == 200, r.text
    assert r.json()["path"] == "/admin/x"


# ------------------------------------------------------------------ access log


def _logged(envoy: Envoy, path: str) -> tuple[str, dict[str, Any] | None]:
    """(status code, tokengate's JSON record) of the access log line for ``path``."""

    def find() -> list[dict[str, Any]]:
        return [entry for entry in envoy.access_log_entries() if entry["path"] == path]

    entry = wait_until(find, 5, 0.1, f"access log line for {path}")[0]
    return str(entry["response_code"]), harness.access_record(entry)


def test_access_log_carries_filter_state_only_verified_values(gate: Gate) -> None:
    envoy = gate.envoy
    tag = secrets.token_hex(4)
    good = tok(sub="erin", jti=f"jti-log-{tag}")
    assert gate.get(f"/api/log-allow-{tag}", bearer(good)).status == 200
    forged = tok(sub="eve-forged", jti=f"jti-forged-{tag}", key=harness.new_key())
    assert gate.get(f"/api/log-badsig-{tag}", bearer(forged)).status == 401
    expired = tok("2026-10", sub="frank", jti=f"jti-exp-{tag}", iat=_now() - 1000, exp=_now() - 60)
    assert gate.get(f"/api/log-expired-{tag}", bearer(expired)).status == 401
    assert gate.get(f"/healthz/log-anon-{tag}", bearer(good)).status == 200
    assert gate.get(f"/api/log-query-{tag}?access_token={tok(sub='gina')}").status == 200
    assert gate.get(f"/api/log-cookie-{tag}", [("cookie", f"tg_token={tok(sub='hank')}")]).status == 200

    # one JSON object per decided request; absent members left out
    assert _logged(envoy, f"/api/log-allow-{tag}") == ("200", {"decision": "allow", "sub": "erin", "jti": f"jti-log-{tag}", "kid": "2026-11"})
    # the signature failed: nothing the token says is logged
    assert _logged(envoy, f"/api/log-badsig-{tag}") == ("401", {"decision": "deny", "reason": "bad_signature"})
    assert "eve-forged" not in envoy.access_log_text() and f"jti-forged-{tag}" not in envoy.access_log_text()
    # the signature held: the values are verified, so they are logged
    assert _logged(envoy, f"/api/log-expired-{tag}") == ("401", {"decision": "deny", "reason": "expired", "sub": "frank", "jti": f"jti-exp-{tag}", "kid": "2026-10"})
    # an anonymous route does not check the token: no identity
    assert _logged(envoy, f"/healthz/log-anon-{tag}") == ("200", {"decision": "anonymous"})
    status, record = _logged(envoy, f"/api/log-query-{tag}")
    assert status == "200" and record is not None and (record["decision"], record["sub"]) == ("allow", "gina"), record
    status, record = _logged(envoy, f"/api/log-cookie-{tag}")
    assert status == "200" and record is not None and (record["decision"], record["sub"]) == ("allow", "hank"), record

    # no token text, from this test or any earlier one in the module, in either log
    time.sleep(0.3)
    logs = {"envoy log": envoy.log_text(), "access log": envoy.access_log_text()}
    assert "wasm log" in logs["envoy log"]  # the plugin's own (debug) lines are there to be checked
    for token in SENT_TOKENS:
        for where, text in logs.items():
            assert token not in text, f"a whole token in the {where}"
            head, payload, sig = token.split(".")
            assert payload not in text and (not sig or sig not in text), f"token content in the {where}"


# ------------------------------------------------------------- configuration


def _bad_config(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    config = copy.deepcopy(GATE)
    config["keys"] = copy.deepcopy(ORDERS["keys"])  # inline: validate runs without the environment
    change(config)
    return harness.bootstrap(listener_port=free_port(), admin_port=free_port(), http_filters=[harness.tokengate_filter(config)])


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node: Any = config
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return change


BAD_CONFIGS = {
    "unknown_algorithm": (_set(["keys", 1, "alg"], "HS255"), ['keys[1].alg: unknown algorithm "HS255"']),
    "lower_case_method": (_set(["rules", 1, "match", "methods"], ["GET", "head"]), ["rules[1].match.methods[1]"]),
    "lower_case_method_first_rule": (_set(["rules", 0, "match", "methods"], ["get"]), ["rules[0].match.methods[0]"]),
    "unknown_field": (_set(["rules", 2, "match", "prefx"], "/x"), ["rules[2].match", "prefx"]),
    "empty_keys": (_set(["keys"], []), ["keys:"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_fails_validate_naming_the_field(wasm_path: Path, case: str) -> None:
    change, wanted = BAD_CONFIGS[case]
    ok, out = harness.validate(_bad_config(change))
    assert not ok, f"{case}: envoy --mode validate accepted it\n{harness.tail(out)}"
    for text in wanted:
        assert text in out, f"{case}: {text!r} not in the output\n{harness.tail(out)}"
    for secret in KEYS.values():
        assert secret not in out


def test_good_configuration_passes_validate(wasm_path: Path) -> None:
    ok, out = harness.validate(_bad_config(lambda c: None))
    assert ok, harness.tail(out)
