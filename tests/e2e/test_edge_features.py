"""tokengate's edge features in a real Envoy: certificate-bound tokens
(docs/token.md, "Certificate-bound tokens (RFC 8705)") and refresh at the edge
(docs/refresh.md; RFC 6749 §6), with their counters
(docs/telemetry.md).

One Envoy (two workers) serves the whole module. Its only listener speaks TLS
with a server certificate from a test CA made here with openssl, and asks for
a client certificate without requiring one (``require_client_certificate:
false`` with a validation context: a certificate that is presented must chain
to the CA). Two client certificates, A and B, are signed by that CA; a third
one, self-signed, is not. Everything is routed to one echo upstream, which
records every request it gets, so each refusal and every refresh answer also
asserts that the upstream never saw the request.

Tokens come from two places: PyJWT (``harness.mint``) and the ``tokengate
mint`` CLI (``--bind-cert``, ``--typ rt+jwt``). The authorization server's key
``auth-1`` signs the tokens the tests send; the edge's key ``edge-1`` signs
the access tokens that refresh mints (``refresh.kid``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import ssl
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest

import harness
from harness import Envoy, RawResponse, free_port, wait_until
from servers import EchoServer

ISS = "https://auth.example.com"
AUD = "orders-api"
REALM = "edge-api"
AUTH_KID = "auth-1"  # the authorization server's key: signs what the tests send
EDGE_KID = "edge-1"  # the edge's key: signs the access tokens refresh mints
KEYS = {AUTH_KID: harness.new_key(32), EDGE_KID: harness.new_key(32)}
KEY_ENV = {AUTH_KID: "TG_E2E_EDGE_AUTH_KEY", EDGE_KID: "TG_E2E_EDGE_EDGE_KEY"}
REFRESH_PATH = "/oauth/token"
ACCESS_TTL = 900
REVOKED_RT_JTI = "rt-revoked-01JD3"
FORM = "application/x-www-form-urlencoded"
# The filter answers the token endpoint itself, at once: a request left
# unanswered this long is a failure (and keeps the module fast when it happens).
TOKEN_ENDPOINT_TIMEOUT_S = 3.0

GATE: dict[str, Any] = {
    "realm": REALM,
    "keys": [
        {"kid": AUTH_KID, "alg": "HS256", "secret_env": KEY_ENV[AUTH_KID]},
        {"kid": EDGE_KID, "alg": "HS256", "secret_env": KEY_ENV[EDGE_KID]},
    ],
    "issuers": [ISS],
    "audiences": [AUD],
    "clock_skew_s": 30,
    "max_lifetime_s": 86400,
    "require_claims": ["exp", "jti"],
    "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes"},
    "roles": {"manager": ["orders:read", "orders:write"]},
    # No rule covers /oauth: the refresh path is answered before any rule, so
    # a refresh request that reached the rules would get no_rule (403).
    "rules": [
        {"match": {"prefix": "/public"}, "anonymous": True},
        {"match": {"prefix": "/orders", "methods": ["GET", "HEAD"]}, "scopes": ["orders:read"]},
        {"match": {"prefix": "/orders"}, "scopes": ["orders:write"]},
        {"match": {"prefix": "/api"}},
    ],
    "revocation": {"on_unavailable": "allow", "static": [{"jti": REVOKED_RT_JTI}]},
    "refresh": {"path": REFRESH_PATH, "access_ttl_s": ACCESS_TTL, "kid": EDGE_KID},
}

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
}

# RFC 6749 §5.2 error codes the token endpoint may answer with.
OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}


# ------------------------------------------------------------------ certificates


def _openssl(*args: str | Path) -> None:
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args[:2]))} failed: {proc.stderr.strip()}")


EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: tuple[Path, Path]
    client_a: tuple[Path, Path]
    client_b: tuple[Path, Path]
    rogue: tuple[Path, Path]  # self-signed: not from the CA


def make_pki(d: Path) -> Pki:
    """A CA; a server certificate (localhost, 127.0.0.1) and two client certificates signed by it; a self-signed client certificate."""
    d.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    _openssl("req", "-x509", *EC, "-sha256", "-days", "2", "-subj", "/CN=tokengate e2e test CA",
             "-keyout", ca_key, "-out", ca_crt,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip

    def leaf(name: str, cn: str, ext: str) -> tuple[Path, Path]:
        crt, key, csr, extfile = d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext"
        _openssl("req", "-new", *EC, "-subj", f"/CN={cn}", "-keyout", key, "-out", csr)
        extfile.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + ext
        )
        _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", str(secrets.randbits(62)),
                 "-days", "2", "-sha256", "-extfile", extfile, "-out", crt)  # fmt: skip
        return crt, key

    server = leaf("server", "localhost", "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    client_a = leaf("client-a", "client-a", "extendedKeyUsage=clientAuth\n")
    client_b = leaf("client-b", "client-b", "extendedKeyUsage=clientAuth\n")
    rogue_crt, rogue_key = d / "rogue.crt", d / "rogue.key"
    _openssl("req", "-x509", *EC, "-sha256", "-days", "2", "-subj", "/CN=client-a",
             "-keyout", rogue_key, "-out", rogue_crt, "-addext", "extendedKeyUsage=clientAuth")  # fmt: skip
    return Pki(ca_crt, server, client_a, client_b, (rogue_crt, rogue_key))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der(cert: Path | tuple[Path, Path]) -> bytes:
    """The DER bytes of a PEM certificate file (or of the certificate of a (cert, key) pair)."""
    path = cert[0] if isinstance(cert, tuple) else cert
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def thumbprint(cert: Path | tuple[Path, Path]) -> str:
    """RFC 8705 §3.1 x5t#S256: base64url (no padding) of SHA-256 of the DER certificate."""
    return b64url(hashlib.sha256(der(cert)).digest())


# ------------------------------------------------------------------------ tokens


def tok(*, kid: str = AUTH_KID, key: str | None = None, ttl: int = 600, typ: str | None = None, **claims: Any) -> str:
    """A PyJWT token valid for GATE unless the arguments say otherwise (a claim passed as None is left out)."""
    claims.setdefault("sub", "alice")
    claims.setdefault("iss", ISS)
    claims.setdefault("aud", AUD)
    headers = {"typ": typ} if typ else None
    return harness.mint(key if key is not None else KEYS[kid], kid=kid, ttl=ttl, headers=headers, **claims)


def refresh_tok(**claims: Any) -> str:
    """A refresh token (header typ rt+jwt unless ``typ`` says otherwise), one hour."""
    claims.setdefault("ttl", 3600)
    claims.setdefault("typ", "rt+jwt")
    return tok(**claims)


def audiences(aud: str | list[str]) -> list[str]:
    """RFC 7519 §4.1.3: one audience may be a string or a one-element array; the same audience either way."""
    return [aud] if isinstance(aud, str) else list(aud)


def payload(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def key_bytes(kid: str) -> bytes:
    return base64.b64decode(KEYS[kid])


def cli_mint(cli: Path, *args: str) -> str:
    """``tokengate mint --kid auth-1 --secret-env … <args>``: the token it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    env[KEY_ENV[AUTH_KID]] = KEYS[AUTH_KID]
    proc = subprocess.run(
        [str(cli), "mint", "--kid", AUTH_KID, "--secret-env", KEY_ENV[AUTH_KID], "--iss", ISS, "--aud", AUD, *args],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert token.count(".") == 2, proc.stdout
    return token


# ------------------------------------------------------------------------ Envoy


class Edge:
    """The module's Envoy, its certificates and its echo upstream."""

    def __init__(self, envoy: Envoy, pki: Pki, echo: EchoServer) -> None:
        self.envoy = envoy
        self.pki = pki
        self.echo = echo
        self.certs = {"a": pki.client_a, "b": pki.client_b, None: None}
        self._bodies: str | None = None  # set by require_bodies(): "" once a form POST was answered

    def request(
        self, method: str, path: str, headers: Any = (), body: bytes | str = b"", cert: str | None = None, timeout: float = 10.0
    ) -> RawResponse:
        return self.envoy.request(method, path, headers=headers, body=body, client_cert=self.certs[cert], timeout=timeout)

    def get(self, path: str, token: str | None = None, cert: str | None = None) -> RawResponse:
        return self.request("GET", path, [("authorization", f"Bearer {token}")] if token else (), cert=cert)

    def token_endpoint(
        self,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        body: bytes | str | None = None,
        content_type: str | None = FORM,
        method: str = "POST",
        cert: str | None = None,
    ) -> RawResponse:
        """A request to the refresh path: ``params`` form-encoded (or a raw ``body``)."""
        if body is None:
            body = urllib.parse.urlencode(params or {})
        headers = [("content-type", content_type)] if content_type else []
        return self.request(method, REFRESH_PATH, headers, body, cert=cert, timeout=TOKEN_ENDPOINT_TIMEOUT_S)

    def refresh(self, refresh_token: str, cert: str | None = None, **extra: str) -> RawResponse:
        return self.token_endpoint({"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}, cert=cert)

    def require_bodies(self) -> None:
        """Fail at once unless the filter answers a POST that carries a form body (probed once).

        Tests whose token endpoint requests carry a body call this first: when
        the filter never gets to see request bodies, each fails here with the
        cause instead of waiting for a timeout per request.
        """
        if self._bodies is None:
            before = self.echo.count
            try:
                r = self.token_endpoint({"grant_type": "password", "username": "u", "password": "p"})
            except TimeoutError:
                self._bodies = (
                    f"a POST with a form body to {REFRESH_PATH} got no answer within {TOKEN_ENDPOINT_TIMEOUT_S} s "
                    "(requests without a body are answered). The filter's on_http_request_body never ran: "
                    "proxy-wasm-cpp-host turns the Pause (StopIteration) that on_http_request_headers returns "
                    "into StopAllIterationAndWatermark unless the PluginConfig sets "
                    "allow_on_headers_stop_iteration: true, so Envoy holds the body back from the filter."
                )
            else:
                assert self.echo.count == before, "the upstream saw a token endpoint request"
                assert_oauth_error(r, "unsupported_grant_type")
                self._bodies = ""
        if self._bodies:
            pytest.fail(self._bodies, pytrace=False)

    def upstream_paths(self) -> list[str]:
        with self.echo.lock:
            return [r["path"] for r in self.echo.requests]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("edge-pki"))


@pytest.fixture(scope="module")
def edge(wasm_path: Path, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[harness.tokengate_filter(GATE)],
            tls=pki.server,
            client_ca=pki.ca,
        )
        tls = config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]["typed_config"]
        # Optional client certificates: asked for, verified against the CA when presented.
        assert tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"] == str(pki.ca)
        tls["require_client_certificate"] = False
        envoy = Envoy(
            config,
            env={KEY_ENV[kid]: secret for kid, secret in KEYS.items()},
            concurrency=2,
            ca_file=pki.ca,
            workdir=tmp_path_factory.mktemp("edge-envoy"),
        )
        yield Edge(envoy, pki, echo)
    finally:
        if envoy is not None:
            envoy.stop()  # by PID
        echo.stop()


@pytest.fixture
def upstream_untouched(edge: Edge) -> Iterator[None]:
    """The test sends nothing the upstream may see."""
    before = edge.echo.count
    yield
    assert edge.echo.count == before, f"the upstream saw: {edge.upstream_paths()[before:]}"


# -------------------------------------------------------------------- assertions


def parse_challenge(value: str) -> dict[str, str]:
    assert value.startswith("Bearer "), value
    return dict(re.findall(r'([a-z_]+)="([^"\\]*)"', value[len("Bearer ") :]))


def assert_refusal(resp: RawResponse, reason: str) -> dict[str, Any]:
    """The refusal of docs/responses.md for ``reason`` (status, challenge, JSON body)."""
    status, error = REASONS[reason]
    assert resp.status == status, f"{reason}: want {status}, got {resp.status} {resp.text!r}"
    ctype = resp.header("content-type") or ""
    assert ctype.split(";")[0].strip() == "application/json", f"{reason}: content-type {ctype!r}"
    body = resp.json()
    assert set(body) == {"error", "reason", "error_description"}, body
    assert body["reason"] == reason, body
    assert body["error"] == (error or "unauthorized"), body
    if status == 401 or reason == "insufficient_scope":
        www = resp.header("www-authenticate")
        assert www is not None, f"{reason}: a www-authenticate challenge is required"
        params = parse_challenge(www)
        assert params.get("realm") == REALM, www
        if error is not None:
            assert params.get("error") == error, www
            assert params.get("error_description"), www
    assert resp.header("x-echo") is None, "the upstream answered a refusal"
    return body


def assert_oauth_error(resp: RawResponse, error: str, reason: str | None = None) -> dict[str, Any]:
    """An RFC 6749 §5.2 error answer of the token endpoint (docs/refresh.md): 400 JSON
    with ``error``; tokengate adds its ``reason`` (one of docs/responses.md)."""
    assert error in OAUTH_ERRORS
    assert resp.status == 400, f"{error}: want 400, got {resp.status} {resp.text!r}"
    ctype = resp.header("content-type") or ""
    assert ctype.split(";")[0].strip() == "application/json", f"{error}: content-type {ctype!r}"
    body = resp.json()
    assert body.get("error") == error, body
    if "error_description" in body:
        assert isinstance(body["error_description"], str) and body["error_description"], body
    assert body.get("reason") in REASONS, f"{error}: the body names no reason of docs/responses.md: {body}"
    if reason is not None:
        assert body["reason"] == reason, body
    assert resp.header("x-echo") is None, "the upstream answered a token endpoint request"
    assert "access_token" not in body, body
    return body


def assert_minted(resp: RawResponse, *, scope: str | None) -> tuple[str, dict[str, Any]]:
    """A 200 answer of the refresh endpoint (docs/refresh.md; RFC 6749 §5.1); returns the access token and its claims, verified by PyJWT with the edge key."""
    assert resp.status == 200, f"want 200, got {resp.status} {resp.text!r}"
    assert resp.header("x-echo") is None, "the upstream answered a refresh request"
    ctype = resp.header("content-type") or ""
    assert ctype.split(";")[0].strip() == "application/json", ctype
    assert (resp.header("cache-control") or "").lower() == "no-store", resp.headers
    body = resp.json()
    assert body["token_type"] == "Bearer", body
    assert body["expires_in"] == ACCESS_TTL and isinstance(body["expires_in"], int), body
    if scope is None:
        assert "scope" not in body or body["scope"] == "", body
    else:
        assert body["scope"] == scope, body
    access = body["access_token"]
    header = jwt.get_unverified_header(access)
    assert header["alg"] == "HS256" and header["kid"] == EDGE_KID, header
    assert header.get("typ", "JWT").lower().removeprefix("application/") in ("jwt", "at+jwt"), header
    claims = jwt.decode(
        access, key_bytes(EDGE_KID), algorithms=["HS256"], audience=AUD, issuer=ISS,
        options={"require": ["exp", "iat", "jti"]},
    )  # fmt: skip
    assert claims["exp"] - claims["iat"] == ACCESS_TTL, claims
    assert abs(claims["iat"] - time.time()) <= 5, claims
    assert claims.get("token_use") != "refresh", claims
    if scope is not None:
        assert claims["scope"] == scope, claims
    # never verifiable with the authorization server's key: the edge key signed it
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(access, key_bytes(AUTH_KID), algorithms=["HS256"], audience=AUD)
    return access, claims


def prom_counters(envoy: Envoy) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in envoy.prometheus().splitlines():
        m = re.match(r"^(tokengate_[a-z0-9_]+)(?:\{\})? ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


# ======================================================= 10.1 bound tokens (mTLS)


def test_thumbprints_differ_and_listener_reports_the_client(edge: Edge) -> None:
    # sanity of the setup: A and B are distinct certificates; the TLS listener forwards
    assert thumbprint(edge.pki.client_a) != thumbprint(edge.pki.client_b)
    r = edge.get("/public/hello", cert="a")
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-forwarded-proto"] == "https"


def test_bound_pyjwt_token_only_with_its_client_certificate(edge: Edge) -> None:
    token = tok(sub="bound-alice", cnf={"x5t#S256": thumbprint(edge.pki.client_a)})
    r = edge.get("/api/bound", token, cert="a")
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-subject"] == "bound-alice"
    before = edge.echo.count
    assert_refusal(edge.get("/api/bound", token, cert="b"), "binding_mismatch")
    assert_refusal(edge.get("/api/bound", token), "binding_mismatch")
    assert edge.echo.count == before
    # and again with A: nothing was cached per token by the refusals
    assert edge.get("/api/bound", token, cert="a").status == 200


def test_bound_cli_token_only_with_its_client_certificate(edge: Edge, cli_path: Path) -> None:
    token = cli_mint(cli_path, "--sub", "cli-bound", "--bind-cert", str(edge.pki.client_a[0]))
    assert payload(token)["cnf"] == {"x5t#S256": thumbprint(edge.pki.client_a[0])}
    r = edge.get("/api/cli", token, cert="a")
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-subject"] == "cli-bound"
    before = edge.echo.count
    assert_refusal(edge.get("/api/cli", token, cert="b"), "binding_mismatch")
    assert_refusal(edge.get("/api/cli", token), "binding_mismatch")
    assert edge.echo.count == before
    # bound to B instead (DER input accepted too, per --help: "PEM or DER")
    der_file = edge.pki.client_b[0].with_suffix(".der")
    der_file.write_bytes(der(edge.pki.client_b[0]))
    token_b = cli_mint(cli_path, "--sub", "cli-bound-b", "--bind-cert", str(der_file))
    assert payload(token_b)["cnf"] == {"x5t#S256": thumbprint(edge.pki.client_b[0])}
    assert edge.get("/api/cli", token_b, cert="b").status == 200
    assert_refusal(edge.get("/api/cli", token_b, cert="a"), "binding_mismatch")


def test_unbound_token_works_with_and_without_client_certificate(edge: Edge) -> None:
    token = tok(sub="unbound")
    for cert in ("a", "b", None):
        r = edge.get("/api/unbound", token, cert=cert)
        assert r.status == 200, f"cert {cert}: {r.status} {r.text}"
        assert r.json()["headers"]["x-auth-subject"] == "unbound"


def test_binding_is_checked_right_after_the_signature(edge: Edge, upstream_untouched: None) -> None:
    a = thumbprint(edge.pki.client_a)
    # signature first: a forged bound token is bad_signature whatever the certificate
    forged = tok(key=harness.new_key(), cnf={"x5t#S256": a})
    assert_refusal(edge.get("/api/x", forged, cert="b"), "bad_signature")
    # unknown key comes before the binding too
    assert_refusal(edge.get("/api/x", tok(kid="nope", key=KEYS[AUTH_KID], cnf={"x5t#S256": a}), cert="b"), "unknown_key")
    # binding before time, issuer, audience, revocation
    expired = tok(iat=int(time.time()) - 1000, exp=int(time.time()) - 300, cnf={"x5t#S256": a})
    assert_refusal(edge.get("/api/x", expired, cert="b"), "binding_mismatch")
    assert_refusal(edge.get("/api/x", expired, cert="a"), "expired")
    wrong_iss = tok(iss="https://evil.example", cnf={"x5t#S256": a})
    assert_refusal(edge.get("/api/x", wrong_iss), "binding_mismatch")
    assert_refusal(edge.get("/api/x", wrong_iss, cert="a"), "wrong_issuer")
    revoked = tok(jti=REVOKED_RT_JTI, cnf={"x5t#S256": a})
    assert_refusal(edge.get("/api/x", revoked, cert="b"), "binding_mismatch")
    assert_refusal(edge.get("/api/x", revoked, cert="a"), "revoked")
    # binding before scopes
    assert_refusal(edge.get("/orders/1", tok(scope="other", cnf={"x5t#S256": a}), cert="b"), "binding_mismatch")


def test_thumbprint_in_another_encoding_is_a_mismatch(edge: Edge, upstream_untouched: None) -> None:
    digest = hashlib.sha256(der(edge.pki.client_a[0])).digest()
    for wrong in (
        digest.hex(),  # hex, as Envoy's attribute is: not the RFC 8705 encoding
        base64.b64encode(digest).decode(),  # padded standard base64
        b64url(hashlib.sha1(der(edge.pki.client_a[0])).digest()),  # x5t (SHA-1), not x5t#S256
        b64url(hashlib.sha256(edge.pki.client_a[0].read_bytes()).digest()),  # SHA-256 of the PEM text
    ):
        assert_refusal(edge.get("/api/enc", tok(cnf={"x5t#S256": wrong}), cert="a"), "binding_mismatch")


def test_client_certificate_from_another_ca_is_refused_by_the_listener(edge: Edge, upstream_untouched: None) -> None:
    # the validation context verifies a presented certificate: a self-signed one
    # (with the same subject as A) never gets a request through
    token = tok(cnf={"x5t#S256": thumbprint(edge.pki.rogue[0])})
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)):
        edge.envoy.request("GET", "/api/rogue", [("authorization", f"Bearer {token}")], client_cert=edge.pki.rogue)


# ============================================================== 10.2 refresh


def test_refresh_with_rt_jwt_typ_mints_an_access_token(edge: Edge) -> None:
    edge.require_bodies()
    before = edge.echo.count
    rt = refresh_tok(sub="rt-user", aud=[AUD, "billing"], roles=["manager", "auditor"], scope="orders:read reports:read", jti="rt-1")
    r = edge.refresh(rt)
    access, claims = assert_minted(r, scope="orders:read reports:read")
    assert claims["sub"] == "rt-user"
    assert claims["iss"] == ISS
    assert claims["aud"] == [AUD, "billing"]
    assert claims["roles"] == ["manager", "auditor"]
    assert "role" not in claims and "cnf" not in claims
    assert claims["jti"] != "rt-1"
    assert edge.echo.count == before, "the upstream saw the refresh request"
    # the minted access token is accepted on a protected route
    r = edge.get("/orders/7", access)
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-auth-subject"] == "rt-user"
    assert seen["x-auth-scopes"] == "orders:read reports:read orders:write"  # own, then the manager role's
    assert "authorization" not in seen


def test_refresh_with_token_use_claim(edge: Edge) -> None:
    edge.require_bodies()
    before = edge.echo.count
    rt = tok(ttl=3600, typ="JWT", token_use="refresh", sub="tu-user", role="manager", scope="orders:write")
    access, claims = assert_minted(edge.refresh(rt), scope="orders:write")
    assert claims["sub"] == "tu-user" and claims["role"] == "manager"
    assert audiences(claims["aud"]) == [AUD], claims
    assert "roles" not in claims
    assert edge.echo.count == before
    r = edge.request("POST", "/orders", [("authorization", f"Bearer {access}")])
    assert r.status == 200, r.text
    # and without any typ header at all
    rt2 = tok(ttl=3600, token_use="refresh", sub="tu-user2", scope="orders:read")
    assert "typ" not in jwt.get_unverified_header(rt2) or jwt.get_unverified_header(rt2)["typ"] == "JWT"
    assert_minted(edge.refresh(rt2), scope="orders:read")


def test_refresh_with_cli_minted_refresh_token(edge: Edge, cli_path: Path) -> None:
    edge.require_bodies()
    rt = cli_mint(cli_path, "--sub", "cli-rt", "--typ", "rt+jwt", "--scope", "orders:read", "--ttl", "1h")
    assert jwt.get_unverified_header(rt)["typ"].lower() == "rt+jwt"
    access, claims = assert_minted(edge.refresh(rt), scope="orders:read")
    assert claims["sub"] == "cli-rt"
    assert edge.get("/orders/1", access).status == 200


def test_refresh_jti_is_fresh_on_every_call(edge: Edge) -> None:
    edge.require_bodies()
    rt = refresh_tok(sub="jti-user", scope="orders:read", jti="rt-jti-fixed")
    jtis = set()
    tokens = set()
    for _ in range(3):
        access, claims = assert_minted(edge.refresh(rt), scope="orders:read")
        jtis.add(claims["jti"])
        tokens.add(access)
    assert len(jtis) == 3, jtis
    assert "rt-jti-fixed" not in jtis
    for access in tokens:
        assert edge.get("/orders/1", access).status == 200


def test_refresh_down_scoping(edge: Edge) -> None:
    edge.require_bodies()
    before = edge.echo.count
    rt = refresh_tok(sub="scoper", scope="orders:read orders:write reports:*")
    # no scope asked: the refresh token's own
    assert_minted(edge.refresh(rt), scope="orders:read orders:write reports:*")
    # a subset (the form encodes the space as '+', the colon as %3A)
    access, _ = assert_minted(edge.refresh(rt, scope="orders:read"), scope="orders:read")
    assert edge.echo.count == before
    assert edge.get("/orders/1", access).status == 200
    assert_refusal(edge.request("POST", "/orders", [("authorization", f"Bearer {access}")]), "insufficient_scope")
    # granted by a wildcard of the refresh token
    assert_minted(edge.refresh(rt, scope="reports:daily orders:write"), scope="reports:daily orders:write")
    # more than the refresh token has: invalid_scope, nothing minted
    before = edge.echo.count
    assert_oauth_error(edge.refresh(rt, scope="admin:all"), "invalid_scope")
    assert_oauth_error(edge.refresh(rt, scope="orders:read admin:all"), "invalid_scope")
    assert_oauth_error(edge.refresh(rt, scope="reports"), "invalid_scope")  # "reports:*" does not grant "reports"
    assert edge.echo.count == before


def test_revoked_refresh_token_is_invalid_grant(edge: Edge, upstream_untouched: None) -> None:
    edge.require_bodies()
    rt = refresh_tok(jti=REVOKED_RT_JTI, scope="orders:read")
    assert_oauth_error(edge.refresh(rt), "invalid_grant", "revoked")


def test_invalid_refresh_tokens_are_invalid_grant(edge: Edge, upstream_untouched: None) -> None:
    edge.require_bodies()
    now = int(time.time())
    cases = {
        "expired": refresh_tok(iat=now - 7200, exp=now - 300),
        "bad_signature": refresh_tok(key=harness.new_key()),
        "wrong_audience": refresh_tok(aud="elsewhere"),
        "malformed": "not-a-token",
    }
    for reason, rt in cases.items():
        assert_oauth_error(edge.refresh(rt), "invalid_grant", reason)


@pytest.mark.parametrize(
    "case, kwargs, error",
    [
        ("GET", {"method": "GET", "body": b"", "content_type": None}, "invalid_request"),
        ("GET with form", {"method": "GET"}, "invalid_request"),
        ("PUT", {"method": "PUT"}, "invalid_request"),
        ("json content type", {"content_type": "application/json"}, "invalid_request"),
        ("no content type", {"content_type": None}, "invalid_request"),
        ("json body", {"body": None, "content_type": "application/json", "json": True}, "invalid_request"),
        ("empty body", {"body": b""}, "invalid_request"),
        ("missing refresh_token", {"params": {"grant_type": "refresh_token"}}, "invalid_request"),
        ("empty refresh_token", {"params": {"grant_type": "refresh_token", "refresh_token": ""}}, "invalid_request"),
        ("missing grant_type", {"params": {"refresh_token": "RT"}}, "invalid_request"),
        ("repeated parameter", {"params": [("grant_type", "refresh_token"), ("refresh_token", "RT"), ("refresh_token", "RT")]}, "invalid_request"),
        ("grant authorization_code", {"params": {"grant_type": "authorization_code", "code": "x", "refresh_token": "RT"}}, "unsupported_grant_type"),
        ("grant client_credentials", {"params": {"grant_type": "client_credentials", "refresh_token": "RT"}}, "unsupported_grant_type"),
    ],
)
def test_token_endpoint_request_errors(
    edge: Edge, upstream_untouched: None, case: str, kwargs: dict[str, Any], error: str
) -> None:
    rt = refresh_tok(scope="orders:read")
    kwargs = dict(kwargs)
    if kwargs.get("method", "POST") == "POST" and kwargs.get("body", None) != b"":
        edge.require_bodies()
    params = kwargs.pop("params", {"grant_type": "refresh_token", "refresh_token": "RT"})
    if isinstance(params, dict):
        params = {k: (rt if v == "RT" else v) for k, v in params.items()}
    else:
        params = [(k, rt if v == "RT" else v) for k, v in params]
    if kwargs.pop("json", False):
        kwargs["body"] = json.dumps({"grant_type": "refresh_token", "refresh_token": rt})
    body = assert_oauth_error(edge.token_endpoint(params, **kwargs), error)
    if error == "invalid_request":
        # docs/responses.md: invalid_request is the error of reason bad_request
        assert body["reason"] == "bad_request", body


def test_oversized_token_endpoint_body_never_reaches_upstream(edge: Edge, upstream_untouched: None) -> None:
    edge.require_bodies()
    rt = refresh_tok(scope="orders:read")
    body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": rt, "pad": "x" * 200_000})
    r = edge.token_endpoint(body=body)
    assert r.status in (400, 413), f"{r.status} {r.text!r}"
    assert "access_token" not in r.text


def test_access_token_as_refresh_token_is_invalid_grant(edge: Edge, upstream_untouched: None) -> None:
    edge.require_bodies()
    for access in (
        tok(scope="orders:read"),  # no typ
        tok(scope="orders:read", typ="at+jwt"),
        tok(scope="orders:read", typ="JWT", token_use="access"),
    ):
        assert_oauth_error(edge.refresh(access), "invalid_grant", "wrong_token_type")


def test_minted_access_token_is_no_refresh_token(edge: Edge) -> None:
    edge.require_bodies()
    access, _ = assert_minted(edge.refresh(refresh_tok(scope="orders:read")), scope="orders:read")
    before = edge.echo.count
    assert_oauth_error(edge.refresh(access), "invalid_grant", "wrong_token_type")
    assert edge.echo.count == before


def test_refresh_token_on_a_normal_route_is_wrong_token_type(edge: Edge, upstream_untouched: None) -> None:
    for rt in (
        refresh_tok(scope="orders:read"),
        refresh_tok(scope="orders:read", typ="application/rt+jwt"),
        tok(ttl=3600, token_use="refresh", scope="orders:read"),
    ):
        assert_refusal(edge.get("/api/x", rt), "wrong_token_type")
        assert_refusal(edge.get("/orders/1", rt), "wrong_token_type")


def test_bound_refresh_token_over_mtls(edge: Edge, cli_path: Path) -> None:
    edge.require_bodies()
    a = thumbprint(edge.pki.client_a)
    for rt in (
        refresh_tok(sub="mtls-user", scope="orders:read", cnf={"x5t#S256": a}),
        cli_mint(cli_path, "--sub", "mtls-user", "--typ", "rt+jwt", "--scope", "orders:read", "--ttl", "1h",
                 "--bind-cert", str(edge.pki.client_a[0])),  # fmt: skip
    ):
        before = edge.echo.count
        access, claims = assert_minted(edge.refresh(rt, cert="a"), scope="orders:read")
        assert claims["cnf"] == {"x5t#S256": a}, claims
        assert claims["sub"] == "mtls-user"
        # the bound refresh token without its certificate: invalid_grant
        assert_oauth_error(edge.refresh(rt, cert="b"), "invalid_grant", "binding_mismatch")
        assert_oauth_error(edge.refresh(rt), "invalid_grant", "binding_mismatch")
        assert edge.echo.count == before
        # the minted access token is bound the same way
        r = edge.get("/orders/1", access, cert="a")
        assert r.status == 200, r.text
        assert_refusal(edge.get("/orders/1", access, cert="b"), "binding_mismatch")
        assert_refusal(edge.get("/orders/1", access), "binding_mismatch")
        assert edge.echo.count == before + 1


def test_unbound_refresh_token_over_mtls_yields_unbound_access_token(edge: Edge) -> None:
    edge.require_bodies()
    access, claims = assert_minted(edge.refresh(refresh_tok(scope="orders:read"), cert="a"), scope="orders:read")
    assert "cnf" not in claims
    for cert in ("a", "b", None):
        assert edge.get("/orders/1", access, cert=cert).status == 200


# ============================================= counters (docs/telemetry.md)


def test_refresh_and_binding_counters(edge: Edge) -> None:
    edge.require_bodies()
    envoy = edge.envoy
    before = prom_counters(envoy)
    assert "tokengate_allowed" in before and "tokengate_denied_binding_mismatch" in before, sorted(before)
    a = thumbprint(edge.pki.client_a)
    rt = refresh_tok(scope="orders:read orders:write")
    expected: dict[str, int] = {}

    def expect(name: str) -> None:
        expected[name] = expected.get(name, 0) + 1

    # refresh successes count as allowed
    for _ in range(3):
        assert_minted(edge.refresh(rt), scope="orders:read orders:write")
        expect("tokengate_allowed")
    # refresh refusals count as denied.<reason>, the reason the body names
    refusals = [
        (edge.refresh(refresh_tok(jti=REVOKED_RT_JTI)), "invalid_grant", "revoked"),
        (edge.refresh(tok()), "invalid_grant", "wrong_token_type"),
        (edge.refresh(refresh_tok(cnf={"x5t#S256": a}), cert="b"), "invalid_grant", "binding_mismatch"),
        (edge.refresh(refresh_tok(key=harness.new_key())), "invalid_grant", "bad_signature"),
        (edge.token_endpoint(method="GET", body=b"", content_type=None), "invalid_request", "bad_request"),
        (edge.token_endpoint({"grant_type": "password", "refresh_token": rt}), "unsupported_grant_type", None),
        (edge.refresh(rt, scope="admin:all"), "invalid_scope", None),
    ]
    for resp, error, reason in refusals:
        body = assert_oauth_error(resp, error, reason)
        expect(f"tokengate_denied_{body['reason']}")
    # on normal routes
    assert_refusal(edge.get("/api/c", rt), "wrong_token_type")
    expect("tokengate_denied_wrong_token_type")
    assert_refusal(edge.get("/api/c", tok(cnf={"x5t#S256": a}), cert="b"), "binding_mismatch")
    expect("tokengate_denied_binding_mismatch")
    assert edge.get("/api/c", tok(cnf={"x5t#S256": a}), cert="a").status == 200
    expect("tokengate_allowed")

    total = sum(expected.values())

    def settled() -> dict[str, float] | None:
        now = prom_counters(envoy)
        moved = sum(v - before.get(k, 0) for k, v in now.items() if k == "tokengate_allowed" or k.startswith("tokengate_denied_") or k == "tokengate_anonymous")
        return now if moved >= total else None

    after = wait_until(settled, 5, 0.1, "counters")
    deltas = {k: after[k] - before.get(k, 0) for k in after if not k.startswith("tokengate_revocation_")}
    want = {k: float(expected.get(k, 0)) for k in deltas}
    assert {k: v for k, v in deltas.items() if v} == {k: v for k, v in want.items() if v}, (
        f"counter deltas differ: got {dict(sorted((k, v) for k, v in deltas.items() if v))}, "
        f"want {dict(sorted((k, v) for k, v in want.items() if v))}"
    )
    # the same under /stats
    stats = envoy.stats()
    assert stats["wasmcustom.tokengate.allowed"] == after["tokengate_allowed"]
    assert stats["wasmcustom.tokengate.denied.wrong_token_type"] == after["tokengate_denied_wrong_token_type"]


# ============================================================ the upstream, overall


def test_upstream_never_saw_the_refresh_path(edge: Edge) -> None:
    # runs last in this module: over every test above, the echo upstream got
    # requests, and not one of them on the refresh path
    paths = edge.upstream_paths()
    assert paths, "the upstream saw nothing at all: the allowed requests above should have reached it"
    assert not [p for p in paths if p.split("?")[0].rstrip("/") == REFRESH_PATH or p.startswith("/oauth")], paths
    assert all(p.startswith(("/api", "/orders", "/public")) for p in paths), paths
