"""An attacker's requests against the gate in a real Envoy: none gets past it.

Each test sends what an attacker would send, over the framing that matters
(HTTP/2 with trailers, an arbitrary ``:authority`` or ``host``, raw HTTP/1.1
with chunks, trailers, ``Expect: 100-continue``, any ``Host`` line: see
``clients.py``), to an Envoy 1.40 running tokengate in front of an echo
upstream on 127.0.0.1, and judges only what can be seen from outside: the
status and JSON ``reason`` the client gets, and what the upstream received
(or that it received nothing). The access log is not read.

Envoys (each started once for the tests that share it, one worker):

* ``edge``: the gate of ``GATE`` (refresh at ``/oauth/token``, a host rule,
  path and method rules, four token sources, claim headers), Envoy's HCM at
  its defaults except ``normalize_path``, ``merge_slashes``, escaped slashes
  refused (the harness's settings) and ``http_protocol_options:
  {enable_trailers: true}``, so that chunked HTTP/1.1 trailers reach the
  filter. ``headers_with_underscores_action`` is left at ALLOW.
* ``upgrades``: the same gate with websocket and CONNECT upgrades turned on
  (``upgrade_configs``, HTTP/2 ``allow_connect``, a ``connect_matcher``
  route), to show that the gate, not Envoy's default, refuses them.
* ``underscores_rejected``: the same gate with ``REJECT_REQUEST`` for
  header names holding ``_``: Envoy itself refuses those requests.
* Revocation: a gate with the singleton revocation service polling a
  ``RevocationSource`` that serves HMAC-signed lists, ``max_stale_s`` of a
  few seconds.
* Two revocation services (section "a second attack"): one gate, two
  workers, two ``tokengate-revocations`` singletons in its vm_id, each
  polling its own source (signed lists version 5 and version 1), started
  once per order of the two.

What Envoy 1.40 itself does, as these tests pin it (measured here):

* HTTP/2 ``:authority`` holding ``@``, white space, or empty, and a request
  with neither ``:authority`` nor ``host``: Envoy closes the connection
  (``http2.rx_messaging_error``), no answer, the filter never runs. Over
  HTTP/1.1 the same ``Host`` values reach the filter (surrounding white
  space trimmed), which answers 400; a request without ``Host`` gets Envoy's
  own 400 (empty body); HTTP/1.0 gets 426.
* HTTP/2 ``host`` beside ``:authority``: Envoy drops the ``host`` header
  before any filter runs; the upstream gets ``Host`` from ``:authority``
  only. A ``host`` without ``:authority`` becomes the authority.
* ``headers_with_underscores_action: REJECT_REQUEST``: HTTP/1.1 gets Envoy's
  400 ``Bad Request`` (text), HTTP/2 a stream reset (RST_STREAM with error
  code 2, INTERNAL_ERROR); the filter never runs.
* CONNECT: at defaults Envoy hands it to the filters (no route matches it:
  without the filter it is Envoy's 404); the gate answers 400, since a
  CONNECT has no path. A websocket upgrade that no ``upgrade_configs``
  allows gets Envoy's 403 (empty body) before the filter decides; once
  allowed, the gate decides it like any request. HTTP/2 extended CONNECT
  (RFC 8441) closes the connection unless ``allow_connect`` is on.
* ``normalize_path`` resolves ``/admin/..;/oauth/token`` to ``/oauth/token``
  (the gate then answers it as the refresh path), while
  ``/admin/%2e%2e;/oauth/token`` reaches the filter as ``..;``, a bad request.

The last tests send requests this hunt found common upstreams reading
differently from the gate (each says which upstream reads it how); they
failed until the filter learnt to read them the same way. The section "a
second attack" pins, in Envoy, what the core's fixes (tested natively)
promise: signed ``sub``/``jti`` values that would forge a log line or hide
an identity are refused, and a second revocation service in the
``tokengate`` vm_id publishing an older list never un-revokes a token. (Paths the upstream routes differently are
``test_differentials.py``; the access log as JSON, ``test_examples.py``.)
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest

import harness
from clients import Reply, chunked, h2_headers, h2_request, http1_exchange, http1_head
from harness import Envoy, free_port, wait_until
from servers import EchoServer, RevocationSource

KEY = harness.new_key(32)
KEY_ENV = "TG_E2E_HARDENING_KEY"
LIST_KEY = harness.new_key(32)
LIST_KEY_ENV = "TG_E2E_HARDENING_LIST_KEY"
KID = "hard-1"
REALM = "hardening"
API_HOST = "api.test"
ADMIN_HOST = "admin.example.com"
PUBLIC_HOST = "public.example.com"
REFRESH_PATH = "/oauth/token"
ACCESS_TTL = 300
FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 8 * 1024
MAX_FORM_PARAMS = 16

GATE: dict[str, Any] = {
    "realm": REALM,
    "keys": [{"kid": KID, "alg": "HS256", "secret_env": KEY_ENV}],
    "token_sources": [
        {"header": "authorization", "scheme": "Bearer"},
        {"header": "x-api-key"},
        {"query": "access_token"},
        {"cookie": "tg_token"},
    ],
    "forward_token": False,
    "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "role": "x-auth-role"},
    "roles": {"admin": ["*"]},
    "refresh": {"path": REFRESH_PATH, "access_ttl_s": ACCESS_TTL, "kid": KID},
    "rules": [
        {"match": {"hosts": [ADMIN_HOST]}, "deny": True},
        {"match": {"prefix": "/public"}, "anonymous": True},
        {"match": {"prefix": "/admin"}, "roles": ["admin"]},
        {"match": {"path": "/account"}, "scopes": ["account:admin"]},
        {"match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "scopes": ["orders:read"]},
        {"match": {"prefix": "/orders", "methods": ["DELETE"]}, "scopes": ["orders:delete"]},
        {"match": {"prefix": "/orders"}, "scopes": ["orders:write"]},
        {"match": {"prefix": "/"}},
    ],
}

CLAIM_HEADERS = ("x-auth-subject", "x-auth-scopes", "x-auth-role")
# Every forged value holds "forged": no upstream request of this module may
# carry one (see the last test).
FORGED_H2 = [
    ("x-auth-subject", "forged-subject"),
    ("x-auth-scopes", "forged:all"),
    ("x_auth_subject", "forged-subject"),
    ("x-auth_scopes", "forged:all"),
]
FORGED_H1 = [
    ("X-Auth-Subject", "forged-subject"),
    ("x-auth-scopes", "forged:all"),
    ("x_auth_subject", "forged-subject"),
    ("X-Auth_Subject", "forged-subject"),
    ("X_AUTH_SCOPES", "forged:all"),
    ("x_auth_role", "forged-admin"),
]

REASONS = {
    "bad_request": (400, "invalid_request"),
    "missing": (401, "unauthorized"),
    "malformed": (401, "invalid_token"),
    "revoked": (401, "invalid_token"),
    "insufficient_scope": (403, "insufficient_scope"),
    "denied": (403, "access_denied"),
    "revocation_unavailable": (503, "temporarily_unavailable"),
}


# ------------------------------------------------------------------ tokens


def token(**claims: Any) -> str:
    """An access token of the gate's key: sub alice, scopes orders:read and orders:write (no admin role)."""
    claims.setdefault("sub", "alice")
    claims.setdefault("scope", "orders:read orders:write")
    return harness.mint(KEY, kid=KID, **claims)


def refresh_token(**claims: Any) -> str:
    claims.setdefault("sub", "rt-user")
    claims.setdefault("scope", "orders:read")
    return harness.mint(KEY, kid=KID, ttl=3600, headers={"typ": "rt+jwt"}, **claims)


def refresh_form(rt: str | None = None, **extra: str) -> bytes:
    return urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": rt or refresh_token(), **extra}).encode()


def bearer(tok: str | None = None) -> tuple[str, str]:
    return ("authorization", f"Bearer {tok or token()}")


# -------------------------------------------------------------- assertions


def assert_refused(reply: Reply, reason: str, *, error: str | None = None) -> dict[str, Any]:
    """A refusal by the gate: the status of ``reason``, JSON with that reason
    (and ``error``: RFC 6750's, or the token endpoint's RFC 6749 one)."""
    status, default_error = REASONS[reason]
    assert reply.status == status, f"want {status} {reason}, got {reply.describe()}"
    ctype = (reply.header("content-type") or "").split(";")[0].strip()
    assert ctype == "application/json", f"{reason}: content-type {ctype!r}, body {reply.body[:200]!r}"
    body = reply.json()
    assert body.get("reason") == reason, body
    assert body.get("error") == (error or default_error), body
    assert reply.header("x-echo") is None, "the upstream answered"
    return body


def assert_token_endpoint_error(reply: Reply, error: str, reason: str) -> dict[str, Any]:
    """An RFC 6749 section 5.2 error of the token endpoint: 400, JSON ``error`` and the gate's ``reason``."""
    assert reply.status == 400, f"want 400 {error}/{reason}, got {reply.describe()}"
    assert (reply.header("content-type") or "").split(";")[0].strip() == "application/json", reply.headers
    body = reply.json()
    assert body.get("error") == error and body.get("reason") == reason, body
    assert "access_token" not in body and reply.header("x-echo") is None, body
    return body


def assert_minted(reply: Reply, *, sub: str, scope: str) -> str:
    """A 200 from the token endpoint (never the upstream) with a new access token; returns it."""
    assert reply.status == 200, reply.describe()
    assert reply.header("x-echo") is None, "the upstream answered a refresh request"
    assert (reply.header("cache-control") or "").lower() == "no-store", reply.headers
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == ACCESS_TTL, body
    assert body["scope"] == scope, body
    claims = jwt.decode(body["access_token"], base64.b64decode(KEY), algorithms=["HS256"])
    assert claims["sub"] == sub and claims["scope"] == scope, claims
    assert "forged" not in json.dumps(claims), claims
    return str(body["access_token"])


def assert_not_tokengate(reply: Reply, status: int | None) -> None:
    """Envoy's own answer (the filter never decided): ``status``, or no
    HTTP answer at all when None (connection closed or stream reset)."""
    if status is None:
        assert reply.status is None, f"want no answer from Envoy, got {reply.describe()}"
        return
    assert reply.status == status, f"want Envoy's own {status}, got {reply.describe()}"
    try:
        body = json.loads(reply.body) if reply.body else {}
    except ValueError:
        body = {}
    assert not (isinstance(body, dict) and "reason" in body), f"the gate answered: {reply.describe()}"
    assert reply.header("x-echo") is None, "the upstream answered"


def folded(name: str) -> str:
    return name.lower().replace("_", "-")


# ------------------------------------------------------------------- Envoys


class Gate:
    """One Envoy with tokengate in front of an echo upstream."""

    def __init__(self, envoy: Envoy, echo: EchoServer) -> None:
        self.envoy = envoy
        self.echo = echo

    @property
    def port(self) -> int:
        return int(self.envoy.listener_port or 0)

    def h1(
        self,
        method: str,
        target: str,
        headers: Any = (),
        body: bytes = b"",
        *,
        host: str | None = API_HOST,
        raw_body: bytes | None = None,
        **kw: Any,
    ) -> Reply:
        """HTTP/1.1 on a fresh connection; ``body`` gets a content-length, ``raw_body`` goes as it is."""
        hdrs = list(headers)
        if raw_body is None and (body or method in ("POST", "PUT")):
            hdrs.append(("content-length", str(len(body))))
        return http1_exchange(self.port, http1_head(method, target, hdrs, host=host), body if raw_body is None else raw_body, method=method, **kw)

    def h2(
        self, method: str, path: str | None, authority: str | None = API_HOST, headers: Any = (), body: bytes | None = None, trailers: Any = None
    ) -> Reply:
        return h2_request(self.port, h2_headers(method, path, authority, *headers), body, trailers)

    def mark(self) -> int:
        return self.echo.count

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.echo.lock:
            return list(self.echo.requests[mark:])

    @contextmanager
    def untouched(self) -> Iterator[None]:
        """The block sends nothing the upstream may see."""
        mark = self.mark()
        yield
        seen = self.since(mark)
        assert not seen, f"the upstream saw: {[(r['method'], r['path'], r['header_list']) for r in seen]}"

    def one_upstream(self, mark: int) -> dict[str, Any]:
        seen = self.since(mark)
        assert len(seen) == 1, f"want one upstream request, got {[(r['method'], r['path']) for r in seen]}"
        return seen[0]


def start_gate(tmp_path_factory: pytest.TempPathFactory, name: str, *, gate: dict[str, Any] = GATE, hcm: dict[str, Any] | None = None, **kw: Any) -> Gate:
    echo = EchoServer()
    try:
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[harness.tokengate_filter(gate)],
            hcm=hcm,
            **kw,
        )
        envoy = Envoy(config, env={KEY_ENV: KEY, LIST_KEY_ENV: LIST_KEY}, concurrency=1, workdir=tmp_path_factory.mktemp(name))
    except BaseException:
        echo.stop()
        raise
    return Gate(envoy, echo)


@contextmanager
def running(gate: Gate) -> Iterator[Gate]:
    try:
        yield gate
    finally:
        gate.envoy.stop()  # by PID
        gate.echo.stop()


@pytest.fixture(scope="module")
def edge(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    with running(start_gate(tmp_path_factory, "hardening-edge", hcm={"http_protocol_options": {"enable_trailers": True}})) as gate:
        yield gate


@pytest.fixture(scope="module")
def upgrades(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    hcm = {
        "upgrade_configs": [{"upgrade_type": "websocket"}, {"upgrade_type": "CONNECT"}],
        "http2_protocol_options": {"allow_connect": True},
    }
    routes = [
        {"match": {"connect_matcher": {}}, "route": {"cluster": "upstream"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
    ]
    with running(start_gate(tmp_path_factory, "hardening-upgrades", hcm=hcm, routes=routes)) as gate:
        yield gate


@pytest.fixture(scope="module")
def underscores_rejected(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    hcm = {"common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"}}
    with running(start_gate(tmp_path_factory, "hardening-underscores", hcm=hcm)) as gate:
        yield gate


# ================================================== 1. the refresh path


def test_refresh_over_h2_with_body_and_trailers_is_answered_by_the_gate(edge: Gate) -> None:
    with edge.untouched():
        r = edge.h2("POST", REFRESH_PATH, headers=[("content-type", FORM), *FORGED_H2], body=refresh_form(), trailers=[("x-trailer", "1"), ("x-auth-subject", "forged-subject")])
        access = assert_minted(r, sub="rt-user", scope="orders:read")
    # the minted token is a working access token, and only its own claims go upstream
    mark = edge.mark()
    r = edge.h2("GET", "/orders/7", headers=[bearer(access), *FORGED_H2])
    assert r.status == 200, r.describe()
    seen = edge.one_upstream(mark)
    assert seen["headers"]["x-auth-subject"] == "rt-user"
    assert seen["headers"]["x-auth-scopes"] == "orders:read"
    assert not [n for n, _ in seen["header_list"] if "_" in n], seen["header_list"]


def test_refresh_over_h2_trailers_framings_never_reach_the_upstream(edge: Gate) -> None:
    with edge.untouched():
        # the body is read under trailers: an access token is no refresh token
        r = edge.h2("POST", REFRESH_PATH, headers=[("content-type", FORM), *FORGED_H2], body=refresh_form(token()), trailers=[("x-trailer", "1")])
        assert_token_endpoint_error(r, "invalid_grant", "wrong_token_type")
        # headers, then trailers, no DATA at all
        r = edge.h2("POST", REFRESH_PATH, headers=[("content-type", FORM), *FORGED_H2], trailers=[("x-trailer", "1")])
        assert_refused(r, "bad_request")
        # headers with END_STREAM: a POST without a body
        r = edge.h2("POST", REFRESH_PATH, headers=[("content-type", FORM), *FORGED_H2])
        assert_refused(r, "bad_request")
        # a body over 8 KiB, in DATA frames, then trailers
        big = refresh_form(pad="x" * MAX_FORM_BYTES)
        r = edge.h2("POST", REFRESH_PATH, headers=[("content-type", FORM), *FORGED_H2], body=big, trailers=[("x-trailer", "1")])
        assert_refused(r, "bad_request")
        # GET
        r = edge.h2("GET", REFRESH_PATH, headers=FORGED_H2)
        assert_refused(r, "bad_request")


def test_refresh_over_http1_chunked_with_trailers(edge: Gate) -> None:
    head = [("content-type", FORM), ("transfer-encoding", "chunked"), *FORGED_H1]
    with edge.untouched():
        r = edge.h1("POST", REFRESH_PATH, head, raw_body=chunked(refresh_form(), [("x-trailer", "1")], size=100))
        assert_minted(r, sub="rt-user", scope="orders:read")
        # forged claim headers as trailers, and an access token for a refresh token
        r = edge.h1("POST", REFRESH_PATH, head, raw_body=chunked(refresh_form(token()), [("x-auth-subject", "forged-subject")]))
        assert_token_endpoint_error(r, "invalid_grant", "wrong_token_type")
        # over 8 KiB in chunks
        r = edge.h1("POST", REFRESH_PATH, head, raw_body=chunked(refresh_form(pad="x" * MAX_FORM_BYTES), [("x-trailer", "1")]))
        assert_refused(r, "bad_request")
        # no body at all: the last chunk and trailers
        r = edge.h1("POST", REFRESH_PATH, head, raw_body=chunked(b"", [("x-trailer", "1")]))
        assert_refused(r, "bad_request")


def test_refresh_with_expect_100_continue(edge: Gate) -> None:
    form = refresh_form()
    with edge.untouched():
        r = edge.h1("POST", REFRESH_PATH, [("content-type", FORM), ("expect", "100-continue"), *FORGED_H1], form, wait_for_continue=True)
        # Envoy answers the 100 itself (proxy_100_continue is off), then the gate answers the form
        assert r.interim == [100], r.interim
        assert_minted(r, sub="rt-user", scope="orders:read")
        big = refresh_form(pad="x" * MAX_FORM_BYTES)
        r = edge.h1("POST", REFRESH_PATH, [("content-type", FORM), ("expect", "100-continue"), *FORGED_H1], big, wait_for_continue=True)
        assert r.interim == [100], r.interim
        assert_refused(r, "bad_request")


def test_refresh_form_limits(edge: Gate) -> None:
    with edge.untouched():
        # over 8 KiB with a content-length
        r = edge.h1("POST", REFRESH_PATH, [("content-type", FORM), *FORGED_H1], refresh_form(pad="x" * MAX_FORM_BYTES))
        body = assert_refused(r, "bad_request")
        assert "large" in body["error_description"], body
        # more than 16 parameters
        extra = {f"p{i}": "1" for i in range(MAX_FORM_PARAMS - 1)}
        r = edge.h1("POST", REFRESH_PATH, [("content-type", FORM), *FORGED_H1], refresh_form(**extra))
        assert_refused(r, "bad_request")
        # exactly at the limits it is answered
        fifteen = {f"p{i}": "1" for i in range(MAX_FORM_PARAMS - 3)}
        r = edge.h1("POST", REFRESH_PATH, [("content-type", FORM)], refresh_form(**fifteen))
        assert_minted(r, sub="rt-user", scope="orders:read")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_refresh_path_with_other_methods(edge: Gate, method: str) -> None:
    with edge.untouched():
        body = assert_refused(edge.h1(method, REFRESH_PATH, FORGED_H1), "bad_request")
        assert "POST" in body["error_description"], body
        assert_refused(edge.h2(method, REFRESH_PATH, headers=FORGED_H2), "bad_request")


@pytest.mark.parametrize("path", ["/admin/..;/oauth/token", "/oauth/token;x", "/oauth//token", "/public/../oauth/token"])
def test_paths_envoy_turns_into_the_refresh_path_are_answered_by_the_gate(edge: Gate, path: str) -> None:
    with edge.untouched():
        assert_minted(edge.h1("POST", path, [("content-type", FORM), *FORGED_H1], refresh_form()), sub="rt-user", scope="orders:read")
        assert_minted(edge.h2("POST", path, headers=[("content-type", FORM), *FORGED_H2], body=refresh_form()), sub="rt-user", scope="orders:read")
        assert_refused(edge.h1("GET", path, FORGED_H1), "bad_request")


@pytest.mark.parametrize(
    "path",
    [
        "/oauth/token/",  # an upstream ignoring the trailing slash
        "/OAUTH/token",  # matching routes case-insensitively
        "/Oauth/Token/",
        "/oauth/token.json",  # a format suffix
        "/admin/%2e%2e;/oauth/token",  # ..; left in place by Envoy: an upstream may resolve it
        "/oauth/token;jsessionid=1/",  # the path parameter cut, then the trailing slash
    ],
)
def test_paths_an_upstream_may_read_as_the_refresh_path_are_bad_requests(edge: Gate, path: str) -> None:
    with edge.untouched():
        assert_refused(edge.h1("POST", path, [("content-type", FORM), *FORGED_H1], refresh_form()), "bad_request")
        assert_refused(edge.h2("POST", path, headers=[("content-type", FORM), *FORGED_H2], body=refresh_form()), "bad_request")


# ==================================================== 2. host rules

GATE_400 = ("gate", 400)
ENVOY_CLOSES = ("envoy", None)


HOST_CASES = [
    ("admin.example.com:80:", GATE_400, GATE_400),
    ("admin.example.com:x", GATE_400, GATE_400),
    ("admin.example.com..", GATE_400, GATE_400),
    ("admin.example.com.", GATE_400, GATE_400),
    ("a@admin.example.com", GATE_400, ENVOY_CLOSES),
    ("", GATE_400, ENVOY_CLOSES),
    ("admin.example.com:99999", GATE_400, GATE_400),
    ("admin.example.com:+80", GATE_400, GATE_400),
    ("admin%2eexample.com", GATE_400, GATE_400),
    ("admin.example.com ", ("gate", 403), ENVOY_CLOSES),  # HTTP/1.1 trims it: the host rule applies
]


@pytest.mark.parametrize("authority, over_h1, over_h2", HOST_CASES, ids=[repr(c[0]) for c in HOST_CASES])
def test_malformed_hosts_never_reach_the_upstream(edge: Gate, authority: str, over_h1: tuple[str, Any], over_h2: tuple[str, Any]) -> None:
    with edge.untouched():
        for reply, (who, status) in (
            (edge.h1("GET", "/reports", [bearer(), *FORGED_H1], host=authority), over_h1),
            (edge.h2("GET", "/reports", authority, [bearer(), *FORGED_H2]), over_h2),
        ):
            if who == "gate":
                assert_refused(reply, "bad_request" if status == 400 else "denied")
            else:
                assert_not_tokengate(reply, status)


def test_host_rule_and_its_controls(edge: Gate) -> None:
    with edge.untouched():
        for host in ("admin.example.com", "ADMIN.Example.COM", "admin.example.com:80", "admin.example.com:080"):
            assert_refused(edge.h1("GET", "/public/x", [bearer()], host=host), "denied")
            assert_refused(edge.h2("GET", "/reports", host, [bearer()]), "denied")
        # absolute-form: Envoy takes the authority from the request line
        assert_refused(edge.h1("GET", f"http://{ADMIN_HOST}/reports", [bearer()], host=PUBLIC_HOST), "denied")
        # two Host lines
        assert_refused(edge.h1("GET", "/reports", [bearer(), ("host", ADMIN_HOST)], host=PUBLIC_HOST), "bad_request")
    for reply in (edge.h1("GET", "/reports", [bearer()], host=PUBLIC_HOST), edge.h2("GET", "/reports", PUBLIC_HOST, [bearer()])):
        assert reply.status == 200, reply.describe()
        assert reply.json()["headers"]["host"] == PUBLIC_HOST


def test_requests_without_a_host_are_refused_by_envoy(edge: Gate) -> None:
    with edge.untouched():
        assert_not_tokengate(edge.h1("GET", "/reports", [bearer()], host=None), 400)
        http10 = http1_exchange(edge.port, b"GET /reports HTTP/1.0\r\nauthorization: Bearer " + token().encode() + b"\r\n\r\n")
        assert_not_tokengate(http10, 426)
        assert_not_tokengate(edge.h2("GET", "/reports", None, [bearer()]), None)


def test_h2_host_header_beside_authority_is_dropped_by_envoy(edge: Gate) -> None:
    mark = edge.mark()
    r = edge.h2("GET", "/reports", PUBLIC_HOST, [bearer(), ("host", ADMIN_HOST)])
    assert r.status == 200, r.describe()
    seen = edge.one_upstream(mark)
    assert seen["headers"]["host"] == PUBLIC_HOST
    assert not [h for h in seen["header_list"] if ADMIN_HOST in h[1].lower()], seen["header_list"]
    # a host header without :authority becomes the authority: the host rule applies
    with edge.untouched():
        assert_refused(edge.h2("GET", "/reports", None, [bearer(), ("host", ADMIN_HOST)]), "denied")


@pytest.mark.parametrize(
    "header",
    [
        ("x-forwarded-host", ADMIN_HOST),
        ("x-forwarded-host", f"{PUBLIC_HOST}, {ADMIN_HOST}"),
        ("forwarded", f"host={ADMIN_HOST}"),
        ("forwarded", f'for=192.0.2.1;host="{ADMIN_HOST}";proto=http'),
        ("forwarded", f"for=192.0.2.1, host={ADMIN_HOST}"),
        ("x-forwarded-host", "admin.example.com:80:"),
    ],
)
def test_other_host_headers_naming_another_host_are_bad_requests(edge: Gate, header: tuple[str, str]) -> None:
    with edge.untouched():
        assert_refused(edge.h1("GET", "/reports", [bearer(), header, *FORGED_H1], host=PUBLIC_HOST), "bad_request")
        assert_refused(edge.h2("GET", "/reports", PUBLIC_HOST, [bearer(), header, *FORGED_H2]), "bad_request")


def test_other_host_headers_naming_the_same_host_pass(edge: Gate) -> None:
    mark = edge.mark()
    r = edge.h1("GET", "/reports", [bearer(), ("x-forwarded-host", PUBLIC_HOST), ("forwarded", f"host={PUBLIC_HOST}")], host=PUBLIC_HOST)
    assert r.status == 200, r.describe()
    assert edge.one_upstream(mark)["headers"]["x-forwarded-host"] == PUBLIC_HOST
    # two lines, the second naming the admin host
    with edge.untouched():
        two = [bearer(), ("x-forwarded-host", PUBLIC_HOST), ("x-forwarded-host", ADMIN_HOST)]
        assert_refused(edge.h1("GET", "/reports", two, host=PUBLIC_HOST), "bad_request")


# ============================================ 3. underscore look-alikes


def test_underscore_lookalikes_never_reach_the_upstream(edge: Gate) -> None:
    lookalikes_h1 = [*FORGED_H1, ("x_api_key", "forged-key")]
    lookalikes_h2 = [*FORGED_H2, ("x_api_key", "forged-key")]
    for send in (
        lambda extra: edge.h1("GET", "/orders/7", [bearer(), *lookalikes_h1, *extra]),
        lambda extra: edge.h2("GET", "/orders/7", API_HOST, [bearer(), *lookalikes_h2, *extra]),
    ):
        mark = edge.mark()
        r = send([])
        assert r.status == 200, r.describe()
        seen = edge.one_upstream(mark)
        names = [n for n, _ in seen["header_list"]]
        assert seen["headers"]["x-auth-subject"] == "alice"
        assert seen["headers"]["x-auth-scopes"] == "orders:read orders:write"
        assert not [n for n in names if "_" in n], names
        assert [folded(n) for n in names].count("x-auth-subject") == 1, names
        assert "x-auth-role" not in [folded(n) for n in names], names  # the token has no role
    # anonymous route: none of them, and no claim header at all
    for r in (edge.h1("GET", "/public/info", lookalikes_h1), edge.h2("GET", "/public/info", API_HOST, lookalikes_h2)):
        assert r.status == 200, r.describe()
        names = [folded(n) for n, _ in r.json()["header_list"]]
        assert not set(names) & {*CLAIM_HEADERS, "x-api-key"}, names
    # refused: nothing at all
    with edge.untouched():
        assert_refused(edge.h1("GET", "/orders/7", lookalikes_h1), "missing")
        assert_refused(edge.h2("GET", "/orders/7", API_HOST, lookalikes_h2), "missing")
        assert_refused(edge.h1("GET", "/admin/users", [bearer(), *lookalikes_h1]), "insufficient_scope")


def test_underscore_lookalike_of_a_token_header_is_no_token(edge: Gate) -> None:
    # x_api_key is stripped, never read as the token: without another token the request is missing one
    with edge.untouched():
        assert_refused(edge.h1("GET", "/orders/7", [("x_api_key", token())]), "missing")


def test_reject_request_makes_envoy_refuse_underscores(underscores_rejected: Gate) -> None:
    gate = underscores_rejected
    before = gate.envoy.stats()
    with gate.untouched():
        for name in ("x_auth_subject", "x-auth_subject", "X_AUTH_SCOPES"):
            r = gate.h1("GET", "/orders/7", [bearer(), (name, "forged-subject")])
            assert_not_tokengate(r, 400)
            assert r.text == "Bad Request", r.describe()
            r = gate.h1("GET", "/public/info", [(name, "forged-subject")])
            assert_not_tokengate(r, 400)
        r = gate.h2("GET", "/orders/7", API_HOST, [bearer(), ("x_auth_subject", "forged-subject")])
        assert_not_tokengate(r, None)
        assert r.reset is not None, f"want a stream reset, got {r.describe()}"
    after = gate.envoy.stats()
    for codec, count in (("http1", 6), ("http2", 1)):
        stat = f"{codec}.requests_rejected_with_underscores_in_headers"
        assert after.get(stat, 0) - before.get(stat, 0) == count, stat
    # the same requests without underscores go through
    r = gate.h2("GET", "/orders/7", API_HOST, [bearer(), ("x-auth-subject", "forged-subject")])
    assert r.status == 200 and r.json()["headers"]["x-auth-subject"] == "alice", r.describe()


# ================================================== 4. path readings


@pytest.mark.parametrize(
    "path",
    [
        "/ADMIN",  # case-insensitive routers (Express, ASP.NET) read /admin
        "/Admin/users",
        "/admin.json",  # suffix patterns (Rails, older Spring) read /admin
        "/ADMIN;x",
        "/admin%2ejson",  # Envoy decodes the unreserved escape first
        "/account/",  # the exact rule is /account: trailing-slash-insensitive routers read it
        "/Account",
        "/account.json",
        "/ORDERS/7",
    ],
)
def test_paths_read_under_another_rule_are_bad_requests(edge: Gate, path: str) -> None:
    with edge.untouched():
        assert_refused(edge.h1("GET", path, [bearer(), *FORGED_H1]), "bad_request")
        assert_refused(edge.h2("GET", path, API_HOST, [bearer(), *FORGED_H2]), "bad_request")


def test_path_readings_do_not_refuse_ordinary_requests(edge: Gate) -> None:
    for path in ("/orders/7", "/orders/7.json", "/orders/", "/reports/q1.csv"):
        mark = edge.mark()
        r = edge.h1("GET", path, [bearer()])
        assert r.status == 200, f"{path}: {r.describe()}"
        assert edge.one_upstream(mark)["path"] == path
    # HEAD on the GET,HEAD rule
    mark = edge.mark()
    r = edge.h1("HEAD", "/orders/7", [bearer()])
    assert r.status == 200 and r.body == b"", r.describe()
    seen = edge.one_upstream(mark)
    assert seen["method"] == "HEAD" and seen["headers"]["x-auth-subject"] == "alice"
    # the rules themselves still decide
    with edge.untouched():
        for path in ("/admin", "/admin/", "/admin/users", "/account"):
            assert_refused(edge.h1("GET", path, [bearer()]), "insufficient_scope")
    mark = edge.mark()
    assert edge.h1("GET", "/admin/users.json", [bearer(token(role="admin"))]).status == 200
    assert edge.one_upstream(mark)["headers"]["x-auth-role"] == "admin"


# ================================================ 5. method override


@pytest.mark.parametrize(
    "override",
    [
        [("x-http-method-override", "DELETE")],
        [("X-HTTP-Method", "delete")],
        [("x-method-override", " DELETE ")],
        [("x-http-method-override", "PUT"), ("x-http-method-override", "DELETE")],
    ],
)
def test_method_override_to_a_stricter_rule_is_a_bad_request(edge: Gate, override: list[tuple[str, str]]) -> None:
    with edge.untouched():
        assert_refused(edge.h1("POST", "/orders/7", [bearer(), *override, *FORGED_H1]), "bad_request")
        assert_refused(edge.h2("POST", "/orders/7", API_HOST, [bearer(), *[(k.lower(), v) for k, v in override], *FORGED_H2]), "bad_request")


def test_method_override_under_the_same_rule_passes(edge: Gate) -> None:
    for method, value in (("POST", "PUT"), ("POST", "PATCH"), ("GET", "HEAD")):
        mark = edge.mark()
        r = edge.h1(method, "/orders/7", [bearer(), ("x-http-method-override", value)])
        assert r.status == 200, f"{method} as {value}: {r.describe()}"
        assert edge.one_upstream(mark)["method"] == method


# ======================================= 6. token smuggling in query and cookies


def test_query_and_cookie_tokens_read_as_upstreams_read_them(edge: Gate) -> None:
    valid = token()
    q = urllib.parse.quote(valid, safe="")
    with edge.untouched():
        # ';' separates pairs too: two tokens
        assert_refused(edge.h1("GET", "/reports?x=1;access_token=A&access_token=B", FORGED_H1), "bad_request")
        assert_refused(edge.h2("GET", "/reports?x=1;access_token=A&access_token=B", API_HOST, FORGED_H2), "bad_request")
        # ASP.NET and PHP names of the same parameter: two tokens
        assert_refused(edge.h1("GET", f"/reports?access_token={q};ACCESS.TOKEN={q}"), "bad_request")
        assert_refused(edge.h1("GET", f"/reports?ACCESS_TOKEN=garbage", [bearer(valid)]), "bad_request")
        assert_refused(edge.h1("GET", "/reports", [("cookie", f"tg_token={valid}; tg.token={valid}")]), "bad_request")
        assert_refused(edge.h1("GET", "/reports", [bearer(valid), ("cookie", "TG_TOKEN=garbage")]), "bad_request")
    cases = [
        (f"/reports?a=1&ACCESS_TOKEN={q}&b=2", [], "/reports?a=1&b=2", None),
        (f"/reports?access.token={q}", [], "/reports", None),
        ("/reports?a=1", [("cookie", f"a=1; tg.token={valid}; b=2")], "/reports?a=1", "a=1; b=2"),
        ("/reports", [("cookie", f"TG_TOKEN={valid}")], "/reports", None),
    ]
    for target, headers, upstream_path, upstream_cookie in cases:
        for send in (lambda: edge.h1("GET", target, headers), lambda: edge.h2("GET", target, API_HOST, headers)):
            mark = edge.mark()
            r = send()
            assert r.status == 200, f"{target} {headers}: {r.describe()}"
            seen = edge.one_upstream(mark)
            assert seen["path"] == upstream_path, seen["path"]
            assert seen["headers"].get("cookie") == upstream_cookie, seen["headers"]
            assert seen["headers"]["x-auth-subject"] == "alice"
            assert valid not in json.dumps(seen), "the token went upstream"
    # an anonymous route: found and cut all the same
    mark = edge.mark()
    r = edge.h1("GET", f"/public/x?ACCESS_TOKEN={q}", [("cookie", f"tg.token={valid}")])
    assert r.status == 200, r.describe()
    seen = edge.one_upstream(mark)
    assert seen["path"] == "/public/x" and "cookie" not in seen["headers"], seen


# ============================================== 7. CONNECT and upgrades

WEBSOCKET = [("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-version", "13"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]


def test_connect_and_websocket_at_envoy_defaults(edge: Gate) -> None:
    with edge.untouched():
        # CONNECT reaches the filter; it has no path: a bad request
        r = http1_exchange(edge.port, f"CONNECT {ADMIN_HOST}:443 HTTP/1.1\r\nHost: {ADMIN_HOST}:443\r\n\r\n".encode())
        assert_refused(r, "bad_request")
        r = http1_exchange(edge.port, f"CONNECT {API_HOST}:443 HTTP/1.1\r\nHost: {API_HOST}:443\r\n\r\n".encode())
        assert_refused(r, "bad_request")
        assert_refused(h2_request(edge.port, [(":method", "CONNECT"), (":authority", f"{API_HOST}:443")]), "bad_request")
        # websocket without upgrade_configs: Envoy's own 403, before the gate decides
        assert_not_tokengate(edge.h1("GET", "/orders/7", WEBSOCKET), 403)
        assert_not_tokengate(edge.h1("GET", "/orders/7", [bearer(), *WEBSOCKET]), 403)
        # HTTP/2 extended CONNECT without allow_connect: the connection is closed
        r = h2_request(edge.port, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", API_HOST), (":path", "/orders/7")])
        assert_not_tokengate(r, None)


def test_connect_and_websocket_without_the_gate(tmp_path: Path, wasm_path: Path) -> None:
    """What Envoy does on its own: a CONNECT matches no route (404), a websocket upgrade is not allowed (403)."""
    echo = EchoServer()
    envoy = None
    try:
        config = harness.bootstrap(listener_port=free_port(), admin_port=free_port(), upstream_port=echo.port)
        envoy = Envoy(config, concurrency=1, workdir=tmp_path)
        port = int(envoy.listener_port or 0)
        assert_not_tokengate(http1_exchange(port, f"CONNECT {API_HOST}:443 HTTP/1.1\r\nHost: {API_HOST}:443\r\n\r\n".encode()), 404)
        assert_not_tokengate(h2_request(port, [(":method", "CONNECT"), (":authority", f"{API_HOST}:443")]), 404)
        assert_not_tokengate(http1_exchange(port, http1_head("GET", "/orders/7", WEBSOCKET)), 403)
        assert echo.count == 0
    finally:
        if envoy is not None:
            envoy.stop()
        echo.stop()


def test_upgrades_allowed_by_envoy_are_decided_by_the_gate(upgrades: Gate) -> None:
    gate = upgrades
    with gate.untouched():
        assert_refused(gate.h1("GET", "/orders/7", [*WEBSOCKET, *FORGED_H1]), "missing")
        assert_refused(gate.h1("GET", "/admin/live", [bearer(), *WEBSOCKET]), "insufficient_scope")
        ext = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", API_HOST), (":path", "/orders/7"), ("sec-websocket-version", "13")]
        assert_refused(h2_request(gate.port, ext), "missing")
        # CONNECT, even with a valid token and a route for it: no path, a bad request
        connect = f"CONNECT {API_HOST}:443 HTTP/1.1\r\nHost: {API_HOST}:443\r\nauthorization: Bearer {token()}\r\n\r\n"
        assert_refused(http1_exchange(gate.port, connect.encode()), "bad_request")
        assert_refused(h2_request(gate.port, [(":method", "CONNECT"), (":authority", f"{API_HOST}:443"), bearer()]), "bad_request")
    # an allowed upgrade goes up with the gate's claim headers only
    mark = gate.mark()
    r = gate.h1("GET", "/orders/7", [bearer(), *WEBSOCKET, *FORGED_H1], timeout=3)
    assert r.status is not None and r.header("x-echo") == "1", r.describe()
    seen = gate.one_upstream(mark)
    assert seen["headers"]["upgrade"] == "websocket" and seen["headers"]["x-auth-subject"] == "alice"
    assert "forged" not in json.dumps(seen["header_list"]), seen["header_list"]


# ========================================== 8. revocation list freshness

STAT = "wasmcustom.tokengate.revocation."
POLL_S = 1
REVOKED_JTI = "hard-revoked-1"


class RevocationGate:
    """A gate with the revocation service polling a source of signed lists."""

    def __init__(self, workdir: Path, *, max_stale_s: int, on_unavailable: str, first: dict[str, Any]) -> None:
        self.max_stale_s = max_stale_s
        self.source = RevocationSource()
        self.version = int(first["version"])
        self.serve(first)
        self.echo = EchoServer()
        gate = {
            "keys": [{"kid": KID, "alg": "HS256", "secret_env": KEY_ENV}],
            "rules": [{"match": {"prefix": "/"}}],
            "claims_to_headers": {"sub": "x-auth-subject"},
            "revocation": {"max_stale_s": max_stale_s, "on_unavailable": on_unavailable},
        }
        service = {
            "cluster": "revocation_source",
            "authority": "revocations.internal",
            "path": "/v1/revocations",
            "poll_interval_s": POLL_S,
            "timeout_ms": 500,
            "verify_key": {"alg": "HS256", "secret_env": LIST_KEY_ENV},
        }
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=self.echo.port,
            http_filters=[harness.tokengate_filter(gate)],
            clusters=[harness.cluster("revocation_source", self.source.port)],
            bootstrap_extensions=[harness.revocation_service(service)],
        )
        try:
            self.envoy = Envoy(config, env={KEY_ENV: KEY, LIST_KEY_ENV: LIST_KEY}, concurrency=1, workdir=workdir)
        except BaseException:
            self.source.stop()
            self.echo.stop()
            raise
        self.wait_version(self.version)

    def stop(self) -> None:
        self.envoy.stop()
        self.source.stop()
        self.echo.stop()

    @staticmethod
    def document(version: int, jtis: list[str], generated_at: int | None = None) -> dict[str, Any]:
        return {"version": version, "generated_at": int(time.time()) if generated_at is None else generated_at, "entries": [{"jti": j} for j in jtis]}

    def serve(self, document: dict[str, Any], etag: str | None = None) -> None:
        """Serve ``document`` signed, with a fixed ETag per version (a 304 answers a poll that names it)."""
        self.source.set(
            body=harness.sign_list(document, LIST_KEY), etag=etag or f'"list-v{document["version"]}"', status=200, content_type="application/jwt"
        )

    def publish(self, jtis: list[str], generated_at: int | None = None) -> dict[str, Any]:
        self.version += 1
        document = self.document(self.version, jtis, generated_at)
        self.serve(document)
        self.wait_version(self.version)
        return document

    def stat(self, name: str) -> int:
        return int(self.envoy.stat(STAT + name, 0) or 0)

    def wait_version(self, version: int) -> None:
        wait_until(lambda: self.stat("version") == version, 10, 0.05, f"version {version} published")
        time.sleep(0.6)  # every worker's 250 ms tick has read it

    def wait_counter(self, name: str, above: int) -> int:
        return int(wait_until(lambda: (lambda v: v if v > above else 0)(self.stat(name)), POLL_S * 4 + 2, 0.05, f"{name} > {above}"))

    def call(self, tok: str) -> tuple[int, str | None]:
        """(status, reason) of one request; a refusal must not reach the upstream."""
        mark = self.echo.count
        r = self.envoy.request("GET", "/api", headers={"authorization": f"Bearer {tok}"})
        if r.status == 200:
            assert self.echo.count == mark + 1 and r.header("x-echo") == "1", "allowed, but not by the upstream"
            return 200, None
        assert self.echo.count == mark, f"{r.status}: the upstream saw the refused request"
        return r.status, r.json().get("reason")


OK = (200, None)
REVOKED = (401, "revoked")
UNAVAILABLE = (503, "revocation_unavailable")
DENY_MAX_STALE_S = 6


@pytest.fixture(scope="module")
def revocations(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationGate]:
    gate = RevocationGate(
        tmp_path_factory.mktemp("hardening-revocation"),
        max_stale_s=DENY_MAX_STALE_S,
        on_unavailable="deny",
        first=RevocationGate.document(1, [REVOKED_JTI]),
    )
    try:
        yield gate
    finally:
        gate.stop()


def wait_for_unavailable(gate: RevocationGate, generated_at: int, good: str, revoked: str) -> float:
    """Until the list goes stale: the good token passes and the revoked one is
    refused; then both get 503. Returns when that began, after ``generated_at``."""
    deadline = generated_at + gate.max_stale_s + 3
    while time.time() < deadline:
        sent = time.time()
        got = gate.call(good)
        if got == UNAVAILABLE:
            assert gate.call(revoked) == UNAVAILABLE
            return sent - generated_at
        assert got == OK, got
        got = gate.call(revoked)
        if got == UNAVAILABLE:
            return sent - generated_at
        assert got == REVOKED, got
        time.sleep(0.1)
    pytest.fail(f"the list signed at {generated_at} was still in use {gate.max_stale_s + 3} s later (max_stale_s {gate.max_stale_s})")


@pytest.mark.parametrize("replay", ["304 Not Modified", "the same signed list again"])
def test_signed_list_goes_stale_however_often_it_is_confirmed(revocations: RevocationGate, replay: str) -> None:
    gate = revocations
    document = gate.publish([REVOKED_JTI])
    if replay == "the same signed list again":
        gate.source.set(etag=None)  # no ETag: every poll gets 200 and the same body
    gate.source.clear_requests()
    not_modified = gate.stat("fetch_not_modified")
    age = wait_for_unavailable(gate, document["generated_at"], token(), token(jti=REVOKED_JTI))
    assert gate.max_stale_s - 0.1 <= age <= gate.max_stale_s + 2, f"503 from {age:.2f} s after generated_at"
    answered = [r["answered"] for r in gate.source.requests]
    assert len(answered) >= 2, answered
    if replay == "304 Not Modified":
        assert set(answered) == {304}, answered
        assert gate.stat("fetch_not_modified") >= not_modified + len(answered) - 1
    else:
        assert set(answered) == {200}, answered
    assert gate.stat("version") == document["version"]
    assert gate.stat("age_s") >= gate.max_stale_s
    # stale and deny: every token that passed the earlier checks gets 503, never the upstream
    assert gate.call(token()) == UNAVAILABLE
    assert gate.call(token(jti=REVOKED_JTI)) == UNAVAILABLE
    r = gate.envoy.request("GET", "/api", headers={"authorization": f"Bearer {token()}"})
    assert r.status == 503 and r.json()["error"] == "temporarily_unavailable", r.text


def test_replayed_older_signed_list_is_refused(revocations: RevocationGate) -> None:
    gate = revocations
    older = gate.publish([REVOKED_JTI])  # genuine, signed, and about to be replayed
    current = gate.publish([REVOKED_JTI, "hard-revoked-2"])
    assert gate.call(token(jti="hard-revoked-2")) == REVOKED
    rollback, failed = gate.stat("rollback_refused"), gate.stat("fetch_failed")
    gate.serve(older)
    gate.wait_counter("rollback_refused", rollback)
    assert gate.stat("version") == current["version"]
    # the list in force still applies: the older one would un-revoke hard-revoked-2
    assert gate.call(token(jti="hard-revoked-2")) == REVOKED
    assert gate.call(token(jti=REVOKED_JTI)) == REVOKED
    gate.wait_counter("rollback_refused", rollback + 1)  # refused at every poll
    assert gate.stat("fetch_failed") >= failed + 2
    assert gate.stat("version") == current["version"]
    # and the replay never makes it fresher: stale max_stale_s after the current list was signed
    age = wait_for_unavailable(gate, current["generated_at"], token(), token(jti="hard-revoked-2"))
    assert gate.max_stale_s - 0.1 <= age <= gate.max_stale_s + 2, f"503 from {age:.2f} s after generated_at"


def test_same_version_with_other_entries_is_a_failed_fetch(revocations: RevocationGate) -> None:
    gate = revocations
    current = gate.publish([REVOKED_JTI, "hard-revoked-3"])
    failed, rollback, ok = gate.stat("fetch_failed"), gate.stat("rollback_refused"), gate.stat("fetch_ok")
    # the publisher changed the list without raising the version (a fresh generated_at, a new ETag)
    changed = RevocationGate.document(current["version"], [REVOKED_JTI, "hard-revoked-4"])
    gate.serve(changed, etag='"changed-same-version"')
    gate.wait_counter("fetch_failed", failed)
    gate.wait_counter("fetch_failed", failed + 1)
    assert gate.stat("rollback_refused") == rollback
    assert gate.stat("fetch_ok") == ok
    assert gate.stat("version") == current["version"]
    time.sleep(0.3)
    assert gate.call(token(jti="hard-revoked-3")) == REVOKED  # the list in force, unchanged
    assert gate.call(token(jti="hard-revoked-4")) == OK  # the change is not taken
    assert gate.call(token(jti=REVOKED_JTI)) == REVOKED
    gate.envoy.wait_for_log(r"\[warning\].*holds other entries than the list in force under the same version")


def test_on_unavailable_allow_keeps_applying_a_stale_list(wasm_path: Path, tmp_path: Path) -> None:
    signed_long_ago = int(time.time()) - 600
    gate = RevocationGate(
        tmp_path, max_stale_s=2, on_unavailable="allow", first=RevocationGate.document(1, [REVOKED_JTI], generated_at=signed_long_ago)
    )
    try:
        # already stale when fetched: taken into force all the same, and applied
        assert gate.stat("age_s") >= 600
        assert gate.call(token(jti=REVOKED_JTI)) == REVOKED
        assert gate.call(token()) == OK
        # a fresh list, then 304s until it is stale: still applied
        document = gate.publish([REVOKED_JTI, "hard-revoked-5"])
        time.sleep(max(0.0, document["generated_at"] + gate.max_stale_s + 2.2 - time.time()))
        assert gate.stat("age_s") > gate.max_stale_s
        assert gate.stat("fetch_not_modified") >= 1
        for _ in range(3):
            assert gate.call(token(jti="hard-revoked-5")) == REVOKED
            assert gate.call(token(jti=REVOKED_JTI)) == REVOKED
            assert gate.call(token()) == OK
    finally:
        gate.stop()


# ============== found by the hunt: readings common upstreams make


@pytest.mark.parametrize(
    "target, headers, upstream_reading",
    [
        (
            "/orders/7?_method=DELETE",
            [],
            "Express's method-override ('_method' query getter, its documented use) and Laravel (Symfony's "
            "_method parameter override, which Laravel's kernel turns on) run this POST as DELETE",
        ),
        (
            "/orders/7",
            [("x-http-method-override", "DELETE, PUT")],
            "Express's method-override takes the first comma-separated value of the header: DELETE",
        ),
        (
            "/orders/7",
            [("x_http_method_override", "DELETE")],
            "CGI-style upstreams (PHP, WSGI, Rack servers that map '_' like '-') read it as X-HTTP-Method-Override, "
            "as they read x_auth_subject as X-Auth-Subject",
        ),
    ],
    ids=["query-_method", "override-header-comma-list", "override-header-underscore"],
)
def test_every_method_override_an_upstream_reads_is_refused(edge: Gate, target: str, headers: list[tuple[str, str]], upstream_reading: str) -> None:
    """POST /orders/7 falls under the orders:write rule; as DELETE it needs orders:delete, which the token lacks."""
    mark = edge.mark()
    r = edge.h1("POST", target, [bearer(), *headers])
    seen = edge.since(mark)
    assert r.status == 400 and not seen, (
        f"POST {target} {headers} with a token lacking orders:delete got {r.describe()[:60]} and the upstream "
        f"{'received it' if seen else 'did not receive it'}; {upstream_reading}, under the stricter DELETE rule: "
        "the gate should refuse it (400 bad_request), as it refuses x-http-method-override: DELETE"
    )
    assert_refused(r, "bad_request")


def test_an_underscore_spelling_of_x_forwarded_host_is_refused(edge: Gate) -> None:
    mark = edge.mark()
    r = edge.h1("GET", "/reports", [bearer(), ("x_forwarded_host", ADMIN_HOST)], host=PUBLIC_HOST)
    seen = edge.since(mark)
    assert r.status == 400 and not seen, (
        f"x_forwarded_host: {ADMIN_HOST} beside Host {PUBLIC_HOST} got {r.describe()[:60]} and the upstream "
        f"{'received it' if seen else 'did not receive it'}; CGI-style upstreams read it as X-Forwarded-Host "
        "(Rails' request.host, Django with USE_X_FORWARDED_HOST, Symfony's trusted proxies), serving the denied "
        "admin host: the gate should refuse it (400 bad_request), as it refuses x-forwarded-host"
    )
    assert_refused(r, "bad_request")


@pytest.mark.parametrize(
    "target, headers, php_reading",
    [
        ("/reports?%20access_token=smuggled", [], "PHP drops leading spaces of a query name: $_GET['access_token']"),
        ("/reports?access_token%00x=smuggled", [], "PHP cuts a query name at NUL (strlen): $_GET['access_token']"),
        ("/reports", [("cookie", "%20tg_token=smuggled")], "PHP decodes cookie names and drops leading spaces: $_COOKIE['tg_token']"),
    ],
    ids=["query-leading-space", "query-nul", "cookie-leading-space"],
)
def test_a_second_token_under_a_name_php_reads_as_the_token_is_refused(edge: Gate, target: str, headers: list[tuple[str, str]], php_reading: str) -> None:
    """A valid token in authorization and a second one where PHP reads the token's name: two tokens."""
    mark = edge.mark()
    r = edge.h1("GET", target, [bearer(), *headers])
    seen = edge.since(mark)
    assert r.status == 400 and not seen, (
        f"GET {target} {headers} beside a valid bearer token got {r.describe()[:60]} and the upstream "
        f"{'received it' if seen else 'did not receive it'}; {php_reading}, a second, unchecked token: "
        "the gate should count it (400 bad_request), as it counts ACCESS_TOKEN and access.token"
    )
    assert_refused(r, "bad_request")


# ============== found by the second red-team round


@pytest.mark.parametrize(
    "target, upstream_reading",
    [
        ("/index.php/admin/users", "Symfony, Laravel and PATH_INFO set-ups route what follows the front controller: /admin/users"),
        ("/index.php?/admin/users", "CodeIgniter routes the query of its front controller when it opens with '/': /admin/users"),
        ("/?/admin", "CodeIgniter behind a rewrite to index.php: /admin"),
        ("/admin%0A", "a regex location or route ending in '$' matches before a final newline: /admin"),
        ("/admin%09%20", "routers that trim the path: /admin"),
    ],
    ids=["front-controller", "codeigniter-query", "codeigniter-root", "final-newline", "trailing-white-space"],
)
def test_paths_read_behind_a_front_controller_or_white_space_are_refused(edge: Gate, target: str, upstream_reading: str) -> None:
    """/admin needs the admin role, which the token lacks; / needs only a valid token."""
    mark = edge.mark()
    r = edge.h1("GET", target, [bearer()])
    seen = edge.since(mark)
    assert r.status == 400 and not seen, (
        f"GET {target} got {r.describe()[:60]} and the upstream {'received it' if seen else 'did not receive it'}; "
        f"{upstream_reading}, under the admin rule: the gate should refuse it (400 bad_request)"
    )
    assert_refused(r, "bad_request")


@pytest.mark.parametrize("name", ["SCRIPT_NAME", "script-name", "PATH_INFO", "path-info"])
def test_cgi_path_headers_are_refused(edge: Gate, name: str) -> None:
    """gunicorn (forwarder_headers) takes these headers for SCRIPT_NAME and PATH_INFO, moving the routed path."""
    with edge.untouched():
        assert_refused(edge.h1("GET", "/orders/7", [bearer(), (name, "/admin")]), "bad_request")
        assert_refused(edge.h2("GET", "/orders/7", API_HOST, [bearer(), (name.lower(), "/admin")]), "bad_request")


def test_a_lower_case_method_over_h2_never_passes_as_another_rule(edge: Gate) -> None:
    """Express and Django take an HTTP/2 `delete` for DELETE, which needs orders:delete."""
    with edge.untouched():
        # Envoy 1.40 passes the lower-case method to the filter (measured).
        r = edge.h2("delete", "/orders/7", API_HOST, [bearer(token(scope="orders:read orders:write"))])
        assert_refused(r, "bad_request")


def test_a_forwarded_value_with_many_hosts_is_refused(edge: Gate) -> None:
    with edge.untouched():
        many = ";".join([f"host={API_HOST}"] * 2000)
        assert_refused(edge.h1("GET", "/orders/7", [bearer(), ("forwarded", many)]), "bad_request")
    mark = edge.mark()
    r = edge.h1("GET", "/orders/7", [bearer(), ("forwarded", f"host={API_HOST};proto=https")])
    assert r.status == 200 and edge.one_upstream(mark)["path"] == "/orders/7", r.describe()


@pytest.mark.parametrize("target", ["/reports?[access_token]=smuggled", "/reports?access_token]=smuggled", "/reports?%5Baccess_token%5D=smuggled"])
def test_bracketed_token_names_rack_and_qs_read_are_a_second_token(edge: Gate, target: str) -> None:
    """Rack and qs read `[access_token]` as `access_token`: a second, unchecked token."""
    with edge.untouched():
        assert_refused(edge.h1("GET", target, [bearer()]), "bad_request")


# ============== found by the third red-team round


@pytest.mark.parametrize(
    "target",
    [
        "/public/index.php?access_token=x&/admin/users",
        "/public/x.php?access_token&/internal/secret",
        "/public/index.php?access_token=x;/admin",
        "/public/index.php?access_token&/oauth/token",
    ],
)
def test_cutting_the_query_token_never_makes_a_path_the_gate_would_refuse(edge: Gate, target: str) -> None:
    """Cut out, `access_token=x&` leaves `?/admin`, which CodeIgniter routes as /admin: the forwarded request is decided too."""
    with edge.untouched():
        assert_refused(edge.h1("GET", target, []), "bad_request")
        assert_refused(edge.h1("POST", target, [("content-type", FORM)], b"grant_type=refresh_token&refresh_token=x"), "bad_request")


def test_a_query_token_is_still_cut_when_the_rule_stays(edge: Gate) -> None:
    mark = edge.mark()
    r = edge.h1("GET", f"/orders/7?access_token={token()}&page=2", [])
    assert r.status == 200, r.describe()
    assert edge.one_upstream(mark)["path"] == "/orders/7?page=2"


@pytest.mark.parametrize("tail", ["%E2%80%A8", "%C2%85", "%E2%80%80", "%EF%BB%BF", "%1F", "%0A/", "%20%C2%A0/"])
def test_every_trailing_white_space_an_upstream_trims_is_refused(edge: Gate, tail: str) -> None:
    """Python's strip, JavaScript's trim, Java's strip and .NET's Trim drop these: /admin<tail> is /admin to them."""
    with edge.untouched():
        assert_refused(edge.h1("GET", f"/admin{tail}", [bearer()]), "bad_request")
        assert_refused(edge.h2("GET", f"/admin{tail}", API_HOST, [bearer()]), "bad_request")
# ============== a second attack: identities and the list, in a real Envoy

# Claim values that would forge a log line or hide an identity: C1 controls
# (U+0085 is NEL, a line break to some readers), the line and paragraph
# separators, C0 controls, and white space at either end that a reader or an
# upstream that trims would not see (" admin" read as "admin").
FORGED_IDENTITIES = [
    "ali\u0085ce",
    "ali\u2028ce",
    "ali\u2029ce",
    "ali\u009bce",
    "ali\u001bce",
    "alice\n",
    " admin",
    "admin\u00a0",
    "admin\t",
    "\u3000admin",
]


@pytest.mark.parametrize("claim", ["sub", "jti"])
@pytest.mark.parametrize("value", FORGED_IDENTITIES, ids=[repr(v) for v in FORGED_IDENTITIES])
def test_a_logged_claim_that_hides_a_control_or_edge_white_space_is_malformed(edge: Gate, claim: str, value: str) -> None:
    """``sub`` and ``jti`` are logged and forwarded: a token carrying one of
    these values, signed with the gate's own key, is refused as malformed
    (docs/token.md, "Claims") over HTTP/1.1 and HTTP/2, before any claim header is
    set, so no ``x-auth-subject`` of it reaches the upstream."""
    signed = token(**{claim: value})
    with edge.untouched():
        assert_refused(edge.h1("GET", "/orders/7", [bearer(signed)]), "malformed")
        assert_refused(edge.h2("GET", "/orders/7", API_HOST, [bearer(signed)]), "malformed")


@pytest.mark.parametrize("value", ['alice bob', 'alice=admin', 'alice" role="admin', 'a\\b'])
def test_a_subject_with_a_space_an_equals_sign_or_a_quote_goes_upstream_as_one_value(edge: Gate, value: str) -> None:
    """Printable characters inside ``sub`` are not refused (docs/token.md, "Claims":
    only controls and white space at either end are): the upstream gets the
    whole value, once, in ``x-auth-subject``, and nothing else of it. The
    access log cannot be forged with them either: the examples log JSON,
    which escapes them (``test_examples.py``)."""
    mark = edge.mark()
    r = edge.h2("GET", "/orders/7", API_HOST, [bearer(token(sub=value))])
    assert r.status == 200, r.describe()
    seen = edge.one_upstream(mark)
    assert [v for n, v in seen["header_list"] if n == "x-auth-subject"] == [value], seen["header_list"]
    assert [n for n, _ in seen["header_list"] if folded(n) == "x-auth-role"] == [], seen["header_list"]


SERVICE_V5_JTI = "hard-two-services-revoked"


def two_services(first: str, ports: dict[str, int]) -> dict[str, Any]:
    """The bootstrap of ``TwoServices``: the gate, and a revocation service
    per source (``ports``: ``v5``, ``v1``), both in vm_id ``tokengate``,
    ``first`` listed first."""
    order = ["v5", "v1"] if first == "v5" else ["v1", "v5"]
    services = [
        harness.revocation_service(
            {
                "cluster": f"revocation_source_{v}",
                "authority": "revocations.internal",
                "path": "/v1/revocations",
                "poll_interval_s": POLL_S,
                "timeout_ms": 500,
                "verify_key": {"alg": "HS256", "secret_env": LIST_KEY_ENV},
            },
            name=f"tokengate-revocations-{v}",
        )
        for v in order
    ]
    gate = {
        "keys": [{"kid": KID, "alg": "HS256", "secret_env": KEY_ENV}],
        "rules": [{"match": {"prefix": "/"}}],
        "revocation": {"max_stale_s": 60, "on_unavailable": "deny"},
    }
    return harness.bootstrap(
        listener_port=free_port(),
        admin_port=free_port(),
        http_filters=[harness.tokengate_filter(gate)],
        clusters=[harness.cluster(f"revocation_source_{v}", ports[v]) for v in order],
        bootstrap_extensions=services,
    )


class TwoServices:
    """A gate (two workers) whose ``tokengate`` vm_id holds two revocation
    services, each polling its own source every second: one serves a signed
    list version 5 revoking ``SERVICE_V5_JTI``, the other a signed list
    version 1 revoking nothing. ``first`` is the service listed first in
    ``bootstrap_extensions``."""

    def __init__(self, workdir: Path, first: str) -> None:
        generated_at = int(time.time())
        self.sources = {"v5": RevocationSource(), "v1": RevocationSource()}
        self.sources["v5"].set(
            body=harness.sign_list({"version": 5, "generated_at": generated_at, "entries": [{"jti": SERVICE_V5_JTI}]}, LIST_KEY),
            etag='"list-v5"',
            content_type="application/jwt",
        )
        self.sources["v1"].set(
            body=harness.sign_list({"version": 1, "generated_at": generated_at, "entries": []}, LIST_KEY), etag='"list-v1"', content_type="application/jwt"
        )
        config = two_services(first, {v: s.port for v, s in self.sources.items()})
        try:
            self.envoy = Envoy(config, env={KEY_ENV: KEY, LIST_KEY_ENV: LIST_KEY}, concurrency=2, workdir=workdir)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if hasattr(self, "envoy"):
            self.envoy.stop()
        for source in self.sources.values():
            source.stop()

    def call(self, tok: str) -> tuple[int, str | None]:
        r = self.envoy.request("GET", "/api", headers={"authorization": f"Bearer {tok}"})
        return (200, None) if r.status == 200 else (r.status, r.json().get("reason"))

    def version(self) -> int:
        return int(self.envoy.stat(STAT + "version", 0) or 0)


@pytest.mark.parametrize("first", ["v5", "v1"], ids=["version-5-service-listed-first", "version-1-service-listed-first"])
def test_two_revocation_services_in_one_vm_id_never_move_the_list_backwards(wasm_path: Path, tmp_path: Path, first: str) -> None:
    """Anything in the ``tokengate`` vm_id can write its shared data: a
    second revocation service there (a copy-paste, a second listener's
    config) publishes its own, older list over the first one's. Whichever
    order Envoy starts them in, the newest list must stay in force: once
    both have published, the token revoked by version 5 is refused as
    ``revoked`` at every request over more than three polls of each, an
    unrevoked token passes, and the version gauge reads 5. ``tokengate
    check-config`` refuses such a file (``cli/tests/cli/check_config.rs``,
    ``test_check_config_refuses_two_services_in_one_vm_id`` below)."""
    gate = TwoServices(tmp_path, first)
    revoked, good = token(jti=SERVICE_V5_JTI), token()
    try:
        # both services have fetched once; every worker's 250 ms tick has read what they published
        wait_until(lambda: all(s.count >= 1 for s in gate.sources.values()), 5, 0.05, "a poll of each source")
        time.sleep(0.6)
        polled = {v: s.count for v, s in gate.sources.items()}
        samples: list[tuple[float, tuple[int, str | None], tuple[int, str | None], int]] = []
        start = time.monotonic()
        while time.monotonic() - start < 3 * POLL_S + 1.2:
            samples.append((round(time.monotonic() - start, 2), gate.call(revoked), gate.call(good), gate.version()))
            time.sleep(0.15)
        polls = {v: s.count - polled[v] for v, s in gate.sources.items()}
        assert min(polls.values()) >= 3, f"each source should have been polled at least 3 times in the window: {polls}"
        wrong = [s for s in samples if s[1] != REVOKED or s[2] != OK or s[3] != 5]
        assert not wrong, (
            f"with the {first} service listed first, {len(wrong)} of {len(samples)} samples "
            "(seconds, revoked token, unrevoked token, version gauge) are not (revoked, 200, 5):\n  " + "\n  ".join(map(str, samples))
        )
    finally:
        gate.stop()


def test_check_config_refuses_two_services_in_one_vm_id(cli_path: Path, tmp_path: Path) -> None:
    """The bootstrap of the test above: ``tokengate check-config`` exits 1 and names the problem."""
    config_file = tmp_path / "envoy.json"
    config_file.write_text(json.dumps(two_services("v5", {"v5": free_port(), "v1": free_port()})))
    proc = subprocess.run([str(cli_path), "check-config", str(config_file)], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert '2 "tokengate-revocations" services share vm_id "tokengate"' in proc.stderr, proc.stderr


# ============== found by the fourth red-team round


@pytest.mark.parametrize("cookie", ["\xa0tg_token={t}", "a=1; \x85tg_token={t}", "tg_token={good}; tg_token\xa0={t}"], ids=["nbsp-first", "nel-after-a-cookie", "beside-the-cut-token"])
def test_a_cookie_name_padded_with_what_python_strips_is_a_second_token(edge: Gate, cookie: str) -> None:
    """WSGI and ASGI servers read header bytes as Latin-1; Django's and Werkzeug's cookie parsers then
    strip() the name, so `\xa0tg_token` is `tg_token` to them: a second, unchecked token."""
    value = cookie.format(t=token(jti="second"), good=token())
    with edge.untouched():
        assert_refused(edge.h1("GET", "/orders/7", [bearer(), ("cookie", value)]), "bad_request")
        # on an anonymous route the look-alike is cut, never forwarded
    mark = edge.mark()
    r = edge.h1("GET", "/public/x", [("cookie", "\xa0tg_token=x; a=1")])
    assert r.status == 200, r.describe()
    assert "tg_token" not in edge.one_upstream(mark)["headers"].get("cookie", "")


@pytest.mark.parametrize("target", ["/admin%20.json", "/admin%01", "/index.php./admin", "/index.php%20/admin", "/index.php::$DATA/admin"])
def test_white_space_before_an_extension_and_windows_script_names_are_refused(edge: Gate, target: str) -> None:
    """Spring's suffix patterns with trimTokens, Java's trim, and PHP on Windows (which drops a trailing
    dot or space from file names and reads ::$DATA as the file) route these as /admin."""
    with edge.untouched():
        assert_refused(edge.h1("GET", target, [bearer()]), "bad_request")


# ===================================================== over the whole module


def test_nothing_forged_and_no_refresh_request_ever_reached_the_upstream(edge: Gate) -> None:
    with edge.echo.lock:
        seen = list(edge.echo.requests)
    assert seen, "the allowed requests above should have reached the upstream"
    for record in seen:
        path = record["path"].split("?")[0]
        assert not path.lower().startswith("/oauth"), record["path"]
        for name, value in record["header_list"]:
            assert "forged" not in value, (record["method"], record["path"], name, value)
            if folded(name) in CLAIM_HEADERS:
                assert name == folded(name), f"a look-alike went up: {name}"
        names = [folded(n) for n, _ in record["header_list"]]
        for claim in CLAIM_HEADERS:
            assert names.count(claim) <= 1, record["header_list"]
