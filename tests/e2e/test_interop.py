"""Interoperability: tokens minted by a standard JWT library (PyJWT) against
tokengate in a real Envoy (a token minted by any standard JWT library with
HS256, HS384 or HS512 is accepted), and the same tokens tampered with,
refused with the exact reason.

One Envoy (two workers) serves the module, with four listeners routed to one
echo upstream:

* ``multi``: four keys (HS256, HS384, HS512, and an HS256 key given as UTF-8
  text, as many libraries take their secret), so ``kid`` is required;
* ``one256`` / ``one384`` / ``one512``: exactly one key each, so tokens
  without ``kid`` are accepted.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import jwt
import pytest

import harness
from harness import Envoy, RawResponse, free_port
from servers import EchoServer

ISS = "https://auth.example.com"
AUD = "orders-api"
REALM = "interop"

ALGS = ("HS256", "HS384", "HS512")
SIZES = {"HS256": 32, "HS384": 48, "HS512": 64}
# Raw secret bytes per kid; handed to the VM as base64 through secret_env.
SECRETS = {f"k-{alg.lower()}": secrets.token_bytes(SIZES[alg]) for alg in ALGS}
UTF8_SECRET = "correct horse battery staple, 32+ chars long!"  # encoding: utf8
ENV = {
    **{f"TG_E2E_INTEROP_{kid.upper().replace('-', '_')}": base64.b64encode(s).decode() for kid, s in SECRETS.items()},
    "TG_E2E_INTEROP_UTF8": UTF8_SECRET,
}


def _key(alg: str, kid: str | None = None) -> dict[str, Any]:
    kid = kid or f"k-{alg.lower()}"
    return {"kid": kid, "alg": alg, "secret_env": f"TG_E2E_INTEROP_{kid.upper().replace('-', '_')}"}


BASE: dict[str, Any] = {
    "realm": REALM,
    "issuers": [ISS],
    "audiences": [AUD],
    "claims_to_headers": {"sub": "x-auth-subject", "scope": "x-auth-scopes", "jti": "x-auth-token-id"},
    "rules": [
        {"match": {"prefix": "/read"}, "scopes": ["orders:read"]},
        {"match": {"prefix": "/write"}, "scopes": ["orders:write"]},
        {"match": {}},
    ],
}

LISTENER_CONFIGS: dict[str, dict[str, Any]] = {
    "multi": {
        **BASE,
        "keys": [
            *(_key(alg) for alg in ALGS),
            {"kid": "k-utf8", "alg": "HS256", "secret_env": "TG_E2E_INTEROP_UTF8", "encoding": "utf8"},
        ],
    },
    "one256": {**BASE, "keys": [_key("HS256")]},
    "one384": {**BASE, "keys": [_key("HS384")]},
    "one512": {**BASE, "keys": [_key("HS512")]},
}
ONE_KEY_LISTENER = {"HS256": "one256", "HS384": "one384", "HS512": "one512"}

SENT_TOKENS: list[str] = []


# ---------------------------------------------------------------- local helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pyjwt(alg: str = "HS256", *, kid: str | None = "default", secret: bytes | str | None = None, **claims: Any) -> str:
    """A token straight from PyJWT (``jwt.encode``); kid "default" means the alg's configured key."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": secrets.token_hex(8)}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    if kid == "default":
        kid = f"k-{alg.lower()}"
    key = secret if secret is not None else SECRETS[f"k-{alg.lower()}"]
    headers = {"kid": kid} if kid is not None else None
    token = jwt.encode(body, key, algorithm=alg, headers=headers)
    SENT_TOKENS.append(token)
    return token


def reencode(token: str, *, header: Callable[[dict[str, Any]], None] | None = None, payload: Callable[[dict[str, Any]], None] | None = None, signature: str | None = None) -> str:
    """The token with its header / payload JSON edited (canonical base64url), the signature kept unless given."""
    h, p, s = token.split(".")
    if header:
        obj = json.loads(b64url_decode(h))
        header(obj)
        h = b64url(json.dumps(obj, separators=(",", ":")).encode())
    if payload:
        obj = json.loads(b64url_decode(p))
        payload(obj)
        p = b64url(json.dumps(obj, separators=(",", ":")).encode())
    out = f"{h}.{p}.{s if signature is None else signature}"
    SENT_TOKENS.append(out)
    return out


def at(envoy: Envoy, port: int) -> Envoy:
    """A view of ``envoy`` whose requests go to another of its listeners (never stop the view)."""
    view = copy.copy(envoy)
    view.listener_port = port
    return view


class Interop:
    def __init__(self, envoy: Envoy, ports: dict[str, int], echo: EchoServer) -> None:
        self.envoy = envoy
        self.ports = ports
        self.echo = echo
        self.views = {name: at(envoy, port) for name, port in ports.items()}

    def get(self, listener: str, path: str, token: str | None = None) -> RawResponse:
        headers = [("authorization", f"Bearer {token}")] if token is not None else []
        return self.views[listener].request("GET", path, headers=headers)


@pytest.fixture(scope="module")
def interop(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interop]:
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        ports = {name: free_port() for name in LISTENER_CONFIGS}
        names = list(ports)
        config = harness.bootstrap(
            listener_port=ports[names[0]],
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[harness.tokengate_filter(LISTENER_CONFIGS[names[0]], name=f"tokengate-{names[0]}")],
        )
        listeners = config["static_resources"]["listeners"]
        for name in names[1:]:
            listener = copy.deepcopy(listeners[0])
            listener["name"] = name
            listener["address"]["socket_address"]["port_value"] = ports[name]
            manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
            manager["stat_prefix"] = name
            manager["http_filters"] = [harness.tokengate_filter(LISTENER_CONFIGS[name], name=f"tokengate-{name}"), harness.router_filter()]
            listeners.append(listener)
        envoy = Envoy(config, env=ENV, concurrency=2, workdir=tmp_path_factory.mktemp("interop-envoy"))
        yield Interop(envoy, ports, echo)
    finally:
        if envoy is not None:
            envoy.stop()  # by PID
            assert envoy.proc is None or envoy.proc.poll() is not None
        echo.stop()


def assert_refused(r: RawResponse, reason: str) -> None:
    """401 invalid_token with ``reason`` in the JSON body and the challenge (docs/responses.md, "The answer")."""
    assert r.status == 401, f"want 401 {reason}, got {r.status} {r.text!r}"
    assert (r.header("content-type") or "").split(";")[0] == "application/json"
    body = r.json()
    assert body["reason"] == reason, body
    assert body["error"] == "invalid_token", body
    assert set(body) == {"error", "reason", "error_description"}, body
    www = r.header("www-authenticate") or ""
    assert www.startswith(f'Bearer realm="{REALM}"') and 'error="invalid_token"' in www, www


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_token_with_kid_accepted(interop: Interop, alg: str) -> None:
    jti = f"jti-{alg}-{secrets.token_hex(4)}"
    token = pyjwt(alg, sub=f"user-{alg}", jti=jti)
    assert json.loads(b64url_decode(token.split(".")[0])) == {"alg": alg, "kid": f"k-{alg.lower()}", "typ": "JWT"}
    r = interop.get("multi", "/any", token)
    assert r.status == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-auth-subject"] == f"user-{alg}" and seen["x-auth-token-id"] == jti
    assert "authorization" not in seen


@pytest.mark.parametrize("alg", ALGS)
def test_pyjwt_token_without_kid_accepted_by_one_key_config(interop: Interop, alg: str) -> None:
    token = pyjwt(alg, kid=None, sub=f"nokid-{alg}")
    assert "kid" not in json.loads(b64url_decode(token.split(".")[0]))
    r = interop.get(ONE_KEY_LISTENER[alg], "/any", token)
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-subject"] == f"nokid-{alg}"
    # with several keys configured, kid is required
    assert_refused(interop.get("multi", "/any", token), "unknown_key")


def test_pyjwt_token_with_utf8_text_secret_accepted(interop: Interop) -> None:
    token = pyjwt("HS256", kid="k-utf8", secret=UTF8_SECRET, sub="utf8-user")
    r = interop.get("multi", "/any", token)
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-subject"] == "utf8-user"


def test_pyjwt_scope_string_and_scp_array(interop: Interop) -> None:
    # scope: a space-separated string
    token = pyjwt("HS384", scope="orders:read orders:write")
    for path in ("/read/1", "/write/1"):
        r = interop.get("multi", path, token)
        assert r.status == 200, (path, r.text)
        assert r.json()["headers"]["x-auth-scopes"] == "orders:read orders:write"
    # scp: an array of strings
    token = pyjwt("HS512", scp=["orders:read", "profile"])
    r = interop.get("multi", "/read/2", token)
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-scopes"] == "orders:read profile"
    r = interop.get("multi", "/write/2", token)
    assert r.status == 403 and r.json()["reason"] == "insufficient_scope", r.text
    # both: their union counts (scope first, then scp, no repeats)
    token = pyjwt("HS256", scope="orders:read", scp=["orders:write", "orders:read"])
    r = interop.get("multi", "/write/3", token)
    assert r.status == 200, r.text
    assert r.json()["headers"]["x-auth-scopes"] == "orders:read orders:write"


def test_pyjwt_audience_list_and_float_dates_accepted(interop: Interop) -> None:
    now = time.time()
    token = pyjwt("HS256", aud=["billing", AUD], iat=now, exp=now + 600.5, nbf=now - 1.25)
    r = interop.get("multi", "/any", token)
    assert r.status == 200, r.text


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/JWT"])
def test_typ_variants_accepted(interop: Interop, typ: str) -> None:
    token = reencode_signed("HS256", header_typ=typ)
    r = interop.get("multi", "/any", token)
    assert r.status == 200, (typ, r.text)


@pytest.mark.parametrize("typ,reason", [("rt+jwt", "wrong_token_type"), ("application/RT+JWT", "wrong_token_type"), ("JOSE", "malformed"), (" JWT", "malformed")])
def test_typ_other_values_refused(interop: Interop, typ: str, reason: str) -> None:
    assert_refused(interop.get("multi", "/any", reencode_signed("HS256", header_typ=typ)), reason)


def reencode_signed(alg: str, *, header_typ: str) -> str:
    """A PyJWT token whose header carries ``typ`` (PyJWT signs it: the MAC holds)."""
    now = int(time.time())
    body = {"sub": "typ", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": secrets.token_hex(8)}
    token = jwt.encode(body, SECRETS[f"k-{alg.lower()}"], algorithm=alg, headers={"kid": f"k-{alg.lower()}", "typ": header_typ})
    assert json.loads(b64url_decode(token.split(".")[0]))["typ"] == header_typ
    SENT_TOKENS.append(token)
    return token


# ------------------------------------------------------------------- tampered


def _flip_sig(token: str) -> str:
    raw = bytearray(b64url_decode(token.split(".")[2]))
    raw[len(raw) // 2] ^= 0x80
    return reencode(token, signature=b64url(bytes(raw)))


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda obj: obj.__setitem__(field, value)


# id → (listener, token builder, reason)
TAMPERED: dict[str, tuple[str, Callable[[], str], str]] = {
    **{
        f"payload_changed-{alg}": ("multi", lambda alg=alg: reencode(pyjwt(alg), payload=_set("sub", "admin")), "bad_signature")
        for alg in ALGS
    },
    "payload_scope_raised": ("multi", lambda: reencode(pyjwt("HS256", scope="orders:read"), payload=_set("scope", "orders:write")), "bad_signature"),
    "payload_exp_extended": ("multi", lambda: reencode(pyjwt("HS256"), payload=_set("exp", int(time.time()) + 86400)), "bad_signature"),
    **{f"signature_bit_flipped-{alg}": ("multi", lambda alg=alg: _flip_sig(pyjwt(alg)), "bad_signature") for alg in ALGS},
    "signature_truncated": ("multi", lambda: reencode(t := pyjwt("HS512"), signature=b64url(b64url_decode(t.split(".")[2])[:32])), "bad_signature"),
    "signed_with_other_secret": ("multi", lambda: pyjwt("HS256", secret=secrets.token_bytes(32)), "bad_signature"),
    "alg_none_signature_kept": ("multi", lambda: reencode(pyjwt("HS256"), header=_set("alg", "none")), "malformed"),
    "alg_none_signature_empty": ("multi", lambda: reencode(pyjwt("HS256"), header=_set("alg", "none"), signature=""), "malformed"),
    "alg_none_no_kid_one_key": ("one256", lambda: reencode(pyjwt("HS256", kid=None), header=_set("alg", "none"), signature=""), "malformed"),
    "alg_rs256_header": ("multi", lambda: reencode(pyjwt("HS256"), header=_set("alg", "RS256")), "malformed"),
    "hs256_token_for_hs512_key": ("multi", lambda: pyjwt("HS256", kid="k-hs512", secret=SECRETS["k-hs512"]), "unknown_key"),
    "hs256_token_for_hs512_only_config": ("one512", lambda: pyjwt("HS256", kid=None, secret=SECRETS["k-hs512"]), "unknown_key"),
    "alg_header_switched_hs512_to_hs256": ("multi", lambda: reencode(pyjwt("HS512"), header=_set("alg", "HS256")), "unknown_key"),
    "kid_switched_to_other_key": ("multi", lambda: reencode(pyjwt("HS256"), header=_set("kid", "k-utf8")), "bad_signature"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_token_refused_with_exact_reason(interop: Interop, case: str) -> None:
    listener, build, reason = TAMPERED[case]
    token = build()
    before = interop.echo.count
    r = interop.get(listener, "/read/x", token)
    assert_refused(r, reason)
    assert interop.echo.count == before, "the upstream saw a refused request"
    for part in token.split(".")[1:]:
        if part:
            assert part not in r.text


def test_no_token_text_in_logs(interop: Interop) -> None:
    time.sleep(0.3)  # Envoy flushes its files every 100 ms
    texts = {"envoy log": interop.envoy.log_text(), "access log": interop.envoy.access_log_text()}
    assert SENT_TOKENS
    for token in SENT_TOKENS:
        payload = token.split(".")[1]
        for where, text in texts.items():
            assert token not in text and payload not in text, f"token content in the {where}"
