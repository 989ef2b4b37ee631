"""The command-line tool `tokengate` (docs/cli.md) against PyJWT and against
the real filter in Envoy.

* Interop both ways: PyJWT verifies what ``tokengate mint`` signs (HS256/384/512,
  ``--secret-env`` or ``--key-file``, every claim flag, ``exp - iat`` = ``--ttl``,
  a 128-bit hex ``jti`` unless given); ``tokengate inspect`` and
  ``tokengate verify`` read what PyJWT signs.
* Same decision as the filter: a table of requests is decided by
  ``tokengate verify --config FILE`` and by one real Envoy (plain listener,
  two workers) running the SAME file: the decision, the reason, the status,
  the verified sub/jti/kid (from the access log's filter state) and the
  request edits (claim headers, token removal) seen by the echo upstream must
  be identical.
* Revocation: a list written by ``tokengate revoke`` (plain, and signed with
  ``--sign-key-env``) is served from its file by the harness RevocationSource to
  an Envoy running the revocation service; each new ``--jti``/``--sub``/``--kid``
  entry is enforced within ``poll_interval_s`` + 1 s, and ``tokengate verify
  --revocation-list`` agrees.
* ``tokengate check-config`` passes every configuration of envoy/ as checked
  in, without a warning, and fails each broken one with exit 1, naming the
  field on stderr.

Run: ``.venv/bin/python -m pytest tests/e2e/test_cli.py -q``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jwt
import pytest
import yaml

import harness
from harness import Envoy, RawResponse, free_port, wait_until
from servers import EchoServer, RevocationSource

# The orders-api fixture (tests/data/orders-api.json) every suite shares.
ORDERS = harness.orders_api()
ISS = ORDERS["issuers"][0]
AUD = ORDERS["audiences"][0]
FIXTURE_KEYS = {k["kid"]: k for k in ORDERS["keys"]}
KID_BY_ALG = {k["alg"]: k["kid"] for k in ORDERS["keys"]}
KID_256, KID_384, KID_512 = KID_BY_ALG["HS256"], KID_BY_ALG["HS384"], KID_BY_ALG["HS512"]

# Secrets: the fixture's. Environment variable names avoid the TOKENGATE_
# prefix, which the harness strips from the environment of every Envoy it
# starts.
KEY_256 = FIXTURE_KEYS[KID_256]["secret"]  # base64, secret_env TGCLI_KEY_256
KEY_384_TEXT = base64.b64decode(FIXTURE_KEYS[KID_384]["secret"]).decode()  # the same bytes as utf8 text, secret_env TGCLI_KEY_384
KEY_512 = FIXTURE_KEYS[KID_512]["secret"]  # base64, inline
KEY_OTHER = harness.new_key(32)  # a key nobody configured
ENV = {"TGCLI_KEY_256": KEY_256, "TGCLI_KEY_384": KEY_384_TEXT}

# The fixture's static revocation entries.
REVOKED_STATIC_JTI = next(e["jti"] for e in ORDERS["revocation"]["static"] if "jti" in e)
REVOKED_STATIC_SUB = next(e["sub"] for e in ORDERS["revocation"]["static"] if "sub" in e)


def _filter() -> dict[str, Any]:
    """The filter configuration of the decision table: the fixture with its
    HS256 key by ``secret_env``, its HS384 key by ``secret_env`` as utf8 text
    and its HS512 key inline; in place of the catch-all ``/``, a rule for the
    hosts under example.com, an exact path and ``/api`` (so a path no rule
    names is ``no_rule``); ``on_unavailable: allow``, since no revocation
    service runs."""
    config = harness.orders_api()
    config["keys"] = [
        {"kid": KID_256, "alg": "HS256", "secret_env": "TGCLI_KEY_256"},
        {"kid": KID_384, "alg": "HS384", "secret_env": "TGCLI_KEY_384", "encoding": "utf8"},
        FIXTURE_KEYS[KID_512],
    ]
    catch_all = config["rules"].pop()
    assert catch_all == {"match": {"prefix": "/"}}, catch_all
    config["rules"] += [
        {"match": {"prefix": "/tenant", "hosts": ["*.example.com"]}},
        {"match": {"path": "/exact"}},
        {"match": {"prefix": "/api"}},
    ]
    config["revocation"]["on_unavailable"] = "allow"
    return config


# It goes verbatim (as text) into the Envoy bootstrap that Envoy runs and
# `tokengate verify` reads.
FILTER: dict[str, Any] = _filter()

# docs/responses.md, "Reasons and status codes": reason -> status
STATUS = {
    "bad_request": 400, "missing": 401, "malformed": 401, "unknown_key": 401, "bad_signature": 401,
    "expired": 401, "not_yet_valid": 401, "lifetime_too_long": 401, "wrong_issuer": 401,
    "wrong_audience": 401, "revoked": 401, "binding_mismatch": 401, "wrong_token_type": 401,
    "tls_required": 403, "insufficient_scope": 403, "denied": 403, "no_rule": 403,
    "revocation_unavailable": 503,
}  # fmt: skip


# ----------------------------------------------------------------------- helpers


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without any TOKENGATE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``target/release/tokengate ARGS`` (never through a shell)."""
    return subprocess.run(
        [str(harness.CLI_PATH), *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=30,
    )


def cli_ok(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    """Run the CLI, require exit 0 and return its stdout."""
    proc = run_cli(*args, env=env, stdin=stdin)
    assert proc.returncode == 0, f"tokengate {' '.join(args)}: exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS with the given header and claims and a literal signature."""
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)])


def flip_signature_bit(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def pyjwt(key: bytes, kid: str | None = KID_256, alg: str = "HS256", headers: dict[str, Any] | None = None, ttl: int = 600, **claims: Any) -> str:
    """A PyJWT token valid for FILTER unless the arguments say otherwise (a claim given as None is left out)."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "exp": now + ttl, "jti": secrets.token_hex(16)}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    hdr = dict(headers or {})
    if kid is not None:
        hdr["kid"] = kid
    return str(jwt.encode(body, key, algorithm=alg, headers=hdr))


def first_line(text: str) -> str:
    return text.splitlines()[0] if text.strip() else ""


def verify_lines(stdout: str) -> dict[str, list[str]]:
    """The ``name: value`` lines of ``tokengate verify`` after the first, grouped by name."""
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines()[1:]:
        name, sep, value = line.partition(": ")
        if sep:
            out.setdefault(name, []).append(value)
    return out


# --------------------------------------------------- 2. interop: mint -> PyJWT


@pytest.mark.parametrize(
    "alg,source,ttl,ttl_s",
    [
        ("HS256", "secret-env", None, 900),
        ("HS256", "secret-env-utf8", "90s", 90),
        ("HS384", "key-file", "1h30m", 5400),
        ("HS512", "key-file", "12h", 43200),
        ("HS512", "secret-env", "7d", 604800),
    ],
)
def test_pyjwt_verifies_minted_tokens(cli_path: Path, tmp_path: Path, alg: str, source: str, ttl: str | None, ttl_s: int) -> None:
    """PyJWT verifies `tokengate mint` tokens with the key; every flag lands in its claim."""
    size = {"HS256": 32, "HS384": 48, "HS512": 64}[alg]
    args = ["mint", "--sub", "alice", "--scope", "orders:read orders:write", "--role", "admin", "--aud", AUD, "--iss", ISS]
    if ttl is not None:
        args += ["--ttl", ttl]
    env: dict[str, str] = {}
    if source == "key-file":
        entry = json.loads(cli_ok("keygen", "--alg", alg, "--kid", "kf-1"))
        assert set(entry) == {"kid", "alg", "secret"} and entry["alg"] == alg and entry["kid"] == "kf-1", entry
        key = b64decode(entry["secret"])
        assert len(key) == size, f"keygen {alg}: a secret of {len(key)} bytes, want {size}"
        key_file = tmp_path / "key.json"
        key_file.write_text(json.dumps(entry))
        args += ["--key-file", str(key_file)]  # kid and alg from the file
        kid = "kf-1"
    elif source == "secret-env":
        key = secrets.token_bytes(size)
        env["TGCLI_MINT_KEY"] = base64.b64encode(key).decode()
        args += ["--kid", "env-1", "--secret-env", "TGCLI_MINT_KEY"] + (["--alg", alg] if alg != "HS256" else [])
        kid = "env-1"
    else:  # utf8 text secret
        text = "utf8-secret-" + secrets.token_hex(16)
        key = text.encode()
        env["TGCLI_MINT_KEY"] = text
        args += ["--kid", "env-2", "--secret-env", "TGCLI_MINT_KEY", "--encoding", "utf8"]
        kid = "env-2"

    before = int(time.time())
    tokens = [cli_ok(*args, env=env).strip() for _ in range(2)]
    after = int(time.time())
    jtis = []
    for token in tokens:
        header = jwt.get_unverified_header(token)
        assert header["alg"] == alg and header["kid"] == kid, header
        assert header.get("typ", "JWT").upper() in ("JWT", "AT+JWT"), header
        claims = jwt.decode(token, key, algorithms=[alg], audience=AUD, issuer=ISS, options={"require": ["exp", "iat", "jti", "sub"]})
        assert claims["sub"] == "alice"
        assert set(claims["scope"].split()) == {"orders:read", "orders:write"}, claims
        roles = ([claims["role"]] if "role" in claims else []) + list(claims.get("roles", []))
        assert roles == ["admin"], claims
        assert claims["aud"] in (AUD, [AUD]) and claims["iss"] == ISS, claims
        assert before <= claims["iat"] <= after, claims
        assert claims["exp"] - claims["iat"] == ttl_s, f"exp - iat = {claims['exp'] - claims['iat']}, want {ttl_s} (--ttl {ttl})"
        assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"]), f"jti {claims['jti']!r} is not 128 bits of hex"
        jtis.append(claims["jti"])
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, secrets.token_bytes(size), algorithms=[alg], audience=AUD, issuer=ISS)
    assert jtis[0] != jtis[1], "two mints gave the same random jti"


def test_mint_given_jti_roles_and_audiences(cli_path: Path) -> None:
    """--jti is used as given; several --role and --aud become arrays PyJWT reads."""
    env = {"TGCLI_MINT_KEY": KEY_256}
    token = cli_ok(
        "mint", "--kid", "k256", "--secret-env", "TGCLI_MINT_KEY", "--sub", "svc-report",
        "--role", "manager", "--role", "auditor", "--aud", AUD, "--aud", "reports-api", "--jti", "my-token-7", "--ttl", "5m",
        env=env,
    ).strip()  # fmt: skip
    claims = jwt.decode(token, b64decode(KEY_256), algorithms=["HS256"], audience="reports-api")
    assert claims["jti"] == "my-token-7"
    assert sorted(claims["aud"]) == sorted([AUD, "reports-api"])
    roles = ([claims["role"]] if "role" in claims else []) + list(claims.get("roles", []))
    assert sorted(roles) == ["auditor", "manager"], claims
    assert claims["exp"] - claims["iat"] == 300
    assert "iss" not in claims and "scope" not in claims, claims


# ----------------------------------------- 2. interop: PyJWT -> inspect, verify


def test_inspect_reads_pyjwt_tokens(cli_path: Path) -> None:
    """inspect shows PyJWT's header and claims exactly, says nothing was verified (also with a bad signature)."""
    key = b64decode(KEY_256)
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISS, "aud": [AUD, "other"], "iat": now, "nbf": now, "exp": now + 600, "jti": "abc-1", "scope": "orders:read", "tenant": "t-9"}
    for alg, key_bytes in (("HS256", key), ("HS384", KEY_384_TEXT.encode()), ("HS512", b64decode(KEY_512))):
        token = jwt.encode(claims, key_bytes, algorithm=alg, headers={"kid": "k-" + alg})
        for variant in (token, flip_signature_bit(token)):
            data = json.loads(cli_ok("inspect", "--json", variant))
            assert data["verified"] is False, data
            assert data["claims"] == claims, data["claims"]
            assert data["header"] == jwt.get_unverified_header(variant), data["header"]
        via_stdin = json.loads(cli_ok("inspect", "--json", "-", stdin=token + "\n"))
        assert via_stdin["claims"] == claims
        text = cli_ok("inspect", token)
        assert "not verified" in text.lower(), text
        assert "abc-1" in text and "alice" in text, text
    expired = jwt.encode({**claims, "iat": now - 4000, "exp": now - 3600}, key, algorithm="HS256")
    data = json.loads(cli_ok("inspect", "--json", expired))
    assert data["verified"] is False and data["claims"]["exp"] == now - 3600
    assert data.get("expired") is True, data


def _verify_filter() -> dict[str, Any]:
    """A filter configuration for verify on PyJWT tokens: the fixture with
    inline secrets, the HS384 one as utf8 text, and no revocation section
    (verify is given no list)."""
    config = harness.orders_api()
    config["keys"] = [
        FIXTURE_KEYS[KID_256],
        {"kid": KID_384, "alg": "HS384", "secret": KEY_384_TEXT, "encoding": "utf8"},
        FIXTURE_KEYS[KID_512],
    ]
    del config["revocation"]
    return config


VERIFY_FILTER: dict[str, Any] = _verify_filter()


def _verify_cases() -> list[tuple[str, Callable[[], str], str, str]]:
    k256, k512, k384 = b64decode(KEY_256), b64decode(KEY_512), KEY_384_TEXT.encode()
    now = int(time.time())
    return [
        ("hs256", lambda: pyjwt(k256), "/api", "allow"),
        ("hs384-utf8-key", lambda: pyjwt(k384, kid=KID_384, alg="HS384"), "/api", "allow"),
        ("hs512", lambda: pyjwt(k512, kid=KID_512, alg="HS512"), "/api", "allow"),
        ("aud-array", lambda: pyjwt(k256, aud=["x", AUD]), "/api", "allow"),
        ("scp-array", lambda: pyjwt(k256, scp=["orders:read"]), "/orders/1", "allow"),
        ("typ-at+jwt", lambda: pyjwt(k256, headers={"typ": "at+jwt"}), "/api", "allow"),
        ("no-kid-several-keys", lambda: pyjwt(k256, kid=None), "/api", "deny unknown_key"),
        ("missing-scope", lambda: pyjwt(k256, scope="orders:write"), "/orders/1", "deny insufficient_scope"),
        ("expired", lambda: pyjwt(k256, iat=now - 600, exp=now - 300), "/api", "deny expired"),
        ("nbf-future", lambda: pyjwt(k256, nbf=now + 600, exp=now + 900), "/api", "deny not_yet_valid"),
        ("wrong-key", lambda: pyjwt(b64decode(KEY_OTHER)), "/api", "deny bad_signature"),
        ("unknown-kid", lambda: pyjwt(k256, kid="nope"), "/api", "deny unknown_key"),
        ("alg-differs-from-key", lambda: pyjwt(k512, kid=KID_256, alg="HS512"), "/api", "deny unknown_key"),
        ("wrong-issuer", lambda: pyjwt(k256, iss="https://evil.example"), "/api", "deny wrong_issuer"),
        ("wrong-audience", lambda: pyjwt(k256, aud="billing"), "/api", "deny wrong_audience"),
        ("missing-jti", lambda: pyjwt(k256, jti=None), "/api", "deny malformed"),
        ("crit-header", lambda: pyjwt(k256, headers={"crit": ["exp"]}), "/api", "deny malformed"),
        ("alg-none", lambda: unsigned({"alg": "none", "kid": KID_256}, {"sub": "a", "exp": now + 600, "jti": "x", "iss": ISS, "aud": AUD}), "/api", "deny malformed"),
        ("no-token", lambda: "", "/api", "deny missing"),
    ]


@pytest.mark.parametrize("name", [c[0] for c in _verify_cases()])
def test_verify_decides_pyjwt_tokens(cli_path: Path, tmp_path: Path, name: str) -> None:
    """verify gives allow or the right reason for PyJWT tokens; exit 0 allowed, 1 refused."""
    _, make, path, want = next(c for c in _verify_cases() if c[0] == name)
    config = tmp_path / "filter.json"
    config.write_text(json.dumps(VERIFY_FILTER))
    token = make()
    args = ["verify", "--config", str(config), "--path", path] + ([token] if token else [])
    proc = run_cli(*args)
    assert first_line(proc.stdout) == want, f"{name}: got {proc.stdout!r} (stderr {proc.stderr!r})"
    assert proc.returncode == (0 if want == "allow" else 1), proc
    if want != "allow":
        reason = want.split()[1]
        lines = verify_lines(proc.stdout)
        assert lines["status"] == [str(STATUS[reason])], proc.stdout
        assert json.loads(lines["body"][0])["reason"] == reason, proc.stdout
    if token:  # the same through stdin
        proc2 = run_cli("verify", "--config", str(config), "--path", path, "-", stdin=token + "\n")
        assert first_line(proc2.stdout) == want, proc2


# ------------------------------------------- 3. same decision as the filter


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    token: str | None  # a name of TABLE_TOKENS, a literal "raw:..." token, or None
    want: str  # "allow", "anonymous" or "deny <reason>"
    host: str = "gate.test"


CASES = [
    # rules, methods, scopes, roles
    Case("get-orders-reader", "GET", "/orders/7", "reader", "allow"),
    Case("head-orders-reader", "HEAD", "/orders/7", "reader", "allow"),
    Case("post-orders-reader", "POST", "/orders", "reader", "deny insufficient_scope"),
    Case("post-orders-writer", "POST", "/orders", "writer", "allow"),
    Case("delete-orders-writer", "DELETE", "/orders/7", "writer", "allow"),
    Case("post-orders-manager-role", "POST", "/orders", "manager", "allow"),
    Case("put-orders-wildcard-scope", "PUT", "/orders/7", "wildcard", "allow"),
    Case("get-orders-no-token", "GET", "/orders/7", None, "deny missing"),
    Case("ordersx-is-not-orders", "GET", "/ordersx", "reader", "deny no_rule"),
    Case("admin-admin", "GET", "/admin/users", "admin", "allow"),
    Case("admin-reader", "GET", "/admin/users", "reader", "deny insufficient_scope"),
    Case("internal-admin", "GET", "/internal/x", "admin", "deny denied"),
    Case("internal-no-token", "POST", "/internal", None, "deny denied"),
    Case("no-rule", "GET", "/other", "admin", "deny no_rule"),
    Case("no-rule-no-token", "GET", "/", None, "deny no_rule"),
    Case("exact-path", "GET", "/exact", "reader", "allow"),
    Case("exact-path-child", "GET", "/exact/1", "reader", "deny no_rule"),
    # hosts
    Case("host-wildcard", "GET", "/tenant/1", "reader", "allow", host="a.example.com"),
    Case("host-wildcard-case-port", "GET", "/tenant/1", "reader", "allow", host="B.Example.COM:8443"),
    Case("host-apex-not-wildcard", "GET", "/tenant/1", "reader", "deny no_rule", host="example.com"),
    Case("host-other", "GET", "/tenant/1", "reader", "deny no_rule", host="example.org"),
    # anonymous routes
    Case("healthz-no-token", "GET", "/healthz/docs", None, "anonymous"),
    Case("healthz-junk-token", "GET", "/healthz/docs", "raw:junk.junk.junk", "anonymous"),
    Case("healthz-expired-token", "PUT", "/healthz", "expired", "anonymous"),
    # path normalization
    Case("dotdot-healthz-to-admin-reader", "GET", "/healthz/../admin", "reader", "deny insufficient_scope"),
    Case("dotdot-healthz-to-admin-admin", "GET", "/healthz/../admin", "admin", "allow"),
    Case("dotdot-healthz-to-admin-no-token", "GET", "/healthz/../admin", None, "deny missing"),
    Case("encoded-dotdot", "GET", "/api/%2e%2e/admin", "reader", "deny insufficient_scope"),
    Case("dot-segments", "GET", "/healthz/./docs/../x", None, "anonymous"),
    Case("merged-slashes", "GET", "//api///x", "reader", "allow"),
    Case("percent-unreserved", "GET", "/%61pi/x", "reader", "allow"),
    Case("query-cut", "GET", "/api/x?next=/admin", "reader", "allow"),
    Case("invalid-escape", "GET", "/api/%zz", "reader", "deny bad_request"),
    # Envoy's own normalize_path/merge_slashes rewrite these before the filter runs
    # (docs/configuration.md): the CLI must give the decision the filter in Envoy gives.
    Case("envoy-normalizes-healthz-dslash-dotdot-admin", "GET", "/healthz//..//admin", "reader", "anonymous"),
    Case("envoy-normalizes-dotdot-above-root", "GET", "/../api/x", "reader", "allow"),
    Case("envoy-normalizes-backslash", "GET", "/api\\x", "reader", "allow"),
    # the token
    Case("hs384-utf8-key", "GET", "/api", "hs384", "allow"),
    Case("hs512-inline-key", "GET", "/api", "hs512", "allow"),
    Case("pyjwt-token", "GET", "/api", "pyjwt", "allow"),
    Case("expired", "GET", "/api", "expired", "deny expired"),
    Case("not-yet-valid", "GET", "/api", "nbf_future", "deny not_yet_valid"),
    Case("wrong-key", "GET", "/api", "wrong_key", "deny bad_signature"),
    Case("unknown-kid", "GET", "/api", "unknown_kid", "deny unknown_key"),
    Case("alg-differs-from-key", "GET", "/api", "alg_mismatch", "deny unknown_key"),
    Case("wrong-issuer", "GET", "/api", "wrong_iss", "deny wrong_issuer"),
    Case("wrong-audience", "GET", "/api", "wrong_aud", "deny wrong_audience"),
    Case("bad-signature", "GET", "/api", "bad_sig", "deny bad_signature"),
    Case("alg-none", "GET", "/api", "alg_none", "deny malformed"),
    Case("garbage", "GET", "/api", "raw:not-a-token", "deny malformed"),
    Case("missing-required-jti", "GET", "/api", "no_jti", "deny malformed"),
    Case("lifetime-too-long", "GET", "/api", "long_lived", "deny lifetime_too_long"),
    Case("refresh-token", "GET", "/api", "refresh", "deny wrong_token_type"),
    Case("revoked-static-jti", "GET", "/api", "revoked_jti", "deny revoked"),
    Case("revoked-static-sub", "GET", "/api", "revoked_sub", "deny revoked"),
    Case("expired-on-deny-rule", "GET", "/internal", "expired", "deny denied"),
]


def _make_table_tokens(tmp: Path) -> dict[str, str]:
    """Every token of CASES, minted now: most by `tokengate mint`, the crafted ones by PyJWT."""
    filter_file = tmp / "filter-for-mint.json"
    filter_file.write_text(json.dumps(FILTER))

    def mint(kid: str = KID_256, *args: str) -> str:
        ttl = [] if "--ttl" in args else ["--ttl", "10m"]
        return cli_ok("mint", "--key-file", str(filter_file), "--kid", kid, "--iss", ISS, "--aud", AUD, *ttl, *args, env=ENV).strip()

    k256 = b64decode(KEY_256)
    now = int(time.time())
    reader = mint(KID_256, "--sub", "alice", "--scope", "orders:read")
    return {
        "reader": reader,
        "writer": mint(KID_256, "--sub", "bob", "--scope", "orders:read orders:write"),
        "manager": mint(KID_256, "--sub", "carol", "--role", "manager"),
        "wildcard": mint(KID_256, "--sub", "dave", "--scope", "orders:*"),
        "admin": mint(KID_256, "--sub", "root", "--role", "admin"),
        "hs384": mint(KID_384, "--sub", "erin", "--scope", "reports:read"),
        "hs512": mint(KID_512, "--sub", "frank"),
        "refresh": mint(KID_256, "--sub", "alice", "--typ", "rt+jwt"),
        "revoked_jti": mint(KID_256, "--sub", "alice", "--jti", REVOKED_STATIC_JTI),
        "revoked_sub": mint(KID_256, "--sub", REVOKED_STATIC_SUB),
        "long_lived": mint(KID_256, "--sub", "alice", "--ttl", f"{ORDERS['max_lifetime_s'] // 3600 + 1}h"),
        "pyjwt": pyjwt(k256, scope="orders:read", tenant="t1"),
        "expired": pyjwt(k256, iat=now - 900, exp=now - 300),
        "nbf_future": pyjwt(k256, nbf=now + 900, exp=now + 1200),
        "wrong_key": pyjwt(b64decode(KEY_OTHER)),
        "unknown_kid": pyjwt(k256, kid="k999"),
        "alg_mismatch": pyjwt(b64decode(KEY_512), kid=KID_256, alg="HS512"),
        "wrong_iss": pyjwt(k256, iss="https://evil.example"),
        "wrong_aud": pyjwt(k256, aud="billing-api"),
        "bad_sig": flip_signature_bit(reader),
        "alg_none": unsigned({"alg": "none", "kid": KID_256, "typ": "JWT"}, {"sub": "alice", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": "n1"}),
        "no_jti": pyjwt(k256, jti=None),
    }


class Table:
    """The module's Envoy (running ``envoy.json``), its echo upstream, and the tokens."""

    def __init__(self, envoy: Envoy, echo: EchoServer, envoy_file: Path, filter_file: Path, tokens: dict[str, str]) -> None:
        self.envoy = envoy
        self.echo = echo
        self.envoy_file = envoy_file
        self.filter_file = filter_file
        self.tokens = tokens

    def token(self, case: Case) -> str | None:
        if case.token is None:
            return None
        if case.token.startswith("raw:"):
            return case.token[4:]
        return self.tokens[case.token]


@pytest.fixture(scope="module")
def table(cli_path: Path, wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    tmp = tmp_path_factory.mktemp("cli-table")
    filter_file = tmp / "filter.json"
    filter_file.write_text(json.dumps(FILTER, indent=2))
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        listener, admin = free_port(), free_port()
        config = harness.bootstrap(
            listener_port=listener,
            admin_port=admin,
            upstream_port=echo.port,
            # the filter file's text, verbatim, as the plugin configuration
            http_filters=[harness.tokengate_filter(filter_file.read_text(), env_keys=sorted(ENV))],
        )
        envoy_file = tmp / "envoy.json"
        envoy_file.write_text(json.dumps(config, indent=2))
        tokens = _make_table_tokens(tmp)
        envoy = Envoy(envoy_file, env=ENV, listener_port=listener, admin_port=admin, concurrency=2, workdir=tmp / "envoy")
        yield Table(envoy, echo, envoy_file, filter_file, tokens)
    finally:
        if envoy is not None:
            envoy.stop()
        echo.stop()


def _access_log_fields(line: str) -> dict[str, Any]:
    """tokengate's JSON record of one access log line (``{}`` when Envoy printed "-")."""
    return harness.access_record(line) or {}


def _envoy_outcome(table: Table, case: Case, token: str | None) -> tuple[str, RawResponse, dict[str, str], dict[str, Any] | None]:
    """Send the case to Envoy: (outcome line like the CLI's, response, access log fields, echo record or None)."""
    envoy = table.envoy
    before = len(envoy.access_log_lines())
    table.echo.reset()
    headers = [("authorization", f"Bearer {token}")] if token is not None else []
    resp = envoy.request(case.method, case.path, headers=headers, host=case.host)
    lines = wait_until(lambda: (lambda ls: ls if len(ls) > before else None)(envoy.access_log_lines()), 5, 0.02, "the access log line")
    assert len(lines) == before + 1, f"expected one new access log line, got {lines[before:]}"
    fields = _access_log_fields(lines[-1])
    echo = table.echo.last
    if resp.status == 200 and resp.header("x-echo") == "1":
        assert echo is not None
        outcome = fields.get("decision", "?")  # allow or anonymous, from the filter state
    else:
        assert echo is None, f"a refused request reached the upstream: {echo}"
        try:
            outcome = f"deny {resp.json()['reason']}"
        except (ValueError, KeyError):
            outcome = f"<status {resp.status}, body {resp.body[:80]!r}, not a tokengate refusal>"
    return outcome, resp, fields, echo


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_and_filter_decide_alike(table: Table, case: Case) -> None:
    """`tokengate verify --config FILE` and the filter in Envoy running FILE give the same decision, reason, status, identity and request edits."""
    token = table.token(case)
    args = ["verify", "--no-tls", "--method", case.method, "--path", case.path, "--host", case.host] + ([token] if token is not None else [])
    proc = run_cli(*args[:1], "--config", str(table.envoy_file), *args[1:], env=ENV)
    assert proc.returncode in (0, 1), f"verify failed: exit {proc.returncode}, stderr {proc.stderr!r}"
    cli = first_line(proc.stdout)
    # The same decision from the bare filter file, unless Envoy's own path
    # normalization (known only from the Envoy file) changed the path: the
    # CLI says so on stderr.
    proc_filter = run_cli(*args[:1], "--config", str(table.filter_file), *args[1:], env=ENV)
    if "normalize_path/merge_slashes turn the path into" not in proc.stderr:
        assert proc_filter.stdout == proc.stdout, f"verify --config filter.json and envoy.json differ:\n{proc_filter.stdout}\n---\n{proc.stdout}"

    envoy, resp, fields, echo = _envoy_outcome(table, case, token)
    assert cli == envoy, (
        f"CLI and filter disagree on {case.method} {case.path} host {case.host} token {case.token}: "
        f"CLI {cli!r}, Envoy {envoy!r} (status {resp.status}, access log {fields})"
    )
    assert proc.returncode == (1 if cli.startswith("deny") else 0), proc
    lines = verify_lines(proc.stdout)
    if cli.startswith("deny"):
        reason = cli.split()[1]
        assert lines.get("status") == [str(resp.status)], f"status: CLI {lines.get('status')}, Envoy {resp.status}"
        assert fields.get("reason") == reason, f"access log reason {fields.get('reason')!r}, want {reason!r}"
        assert json.loads(lines["body"][0]) == resp.json(), "refusal bodies differ"
        www = [v for k, v in resp.headers if k.lower() == "www-authenticate"]
        assert lines.get("www-authenticate", []) == www, f"www-authenticate: CLI {lines.get('www-authenticate')}, Envoy {www}"
    else:
        assert echo is not None
        for line in lines.get("set-header", []):
            name, _, value = line.partition(": ")
            assert echo["headers"].get(name.lower()) == value, f"set-header {name}: CLI {value!r}, upstream got {echo['headers'].get(name.lower())!r}"
        for name in lines.get("remove-header", []):
            assert name.lower() not in echo["headers"], f"CLI removes {name}, the upstream still got it"
        if token is not None:
            assert "authorization" not in echo["headers"], "the token reached the upstream"
    for name in ("sub", "jti", "kid"):
        assert lines.get(name, [""])[0] == fields.get(name, ""), f"{name}: CLI {lines.get(name)}, filter state {fields.get(name)!r}"
    assert cli == case.want, f"CLI and filter agree on {cli!r}, but the table expects {case.want!r}"


def test_table_is_large_and_covers_every_kind(table: Table) -> None:
    """At least 30 cases; every outcome the issue lists appears."""
    assert len(CASES) >= 30
    wanted = {c.want for c in CASES}
    for outcome in ("allow", "anonymous", "deny missing", "deny expired", "deny insufficient_scope", "deny bad_signature",
                    "deny wrong_issuer", "deny wrong_audience", "deny malformed", "deny wrong_token_type", "deny revoked",
                    "deny denied", "deny no_rule", "deny unknown_key"):  # fmt: skip
        assert outcome in wanted, outcome
    assert {c.method for c in CASES} >= {"GET", "HEAD", "POST", "PUT", "DELETE"}
    assert len({c.host for c in CASES}) >= 4


# ---------------------------------------- 4. revoke -> RevocationSource -> Envoy

POLL_S = 1
DEADLINE_S = POLL_S + 1  # docs/revocation.md, "Polling and the hand-over to workers": workers see a new list within poll_interval_s + 1 s


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
def test_revoke_file_is_served_and_enforced(cli_path: Path, wasm_path: Path, tmp_path: Path, signed: bool) -> None:
    """`tokengate revoke` rewrites the file the source serves; Envoy refuses each newly revoked token (jti, sub, kid)
    with reason `revoked` within poll_interval_s + 1 s, keeps the others, and `verify --revocation-list` agrees."""
    keys = {"r1": harness.new_key(), "r2": harness.new_key()}
    env = {"TGCLI_REV_R1": keys["r1"], "TGCLI_REV_R2": keys["r2"], "TGCLI_LIST_KEY": harness.new_key()}
    list_file = tmp_path / ("revocations.jws" if signed else "revocations.json")
    sign = ["--sign-key-env", "TGCLI_LIST_KEY"] if signed else []

    def revoke(*entry: str) -> str:
        return cli_ok("revoke", "--list", str(list_file), *entry, *sign, env=env)

    def read_list() -> dict[str, Any]:
        text = list_file.read_text().strip()
        if not signed:
            return dict(json.loads(text))
        header = jwt.get_unverified_header(text)
        assert header.get("typ") == "tokengate-revocations" and header["alg"] == "HS256", header
        return dict(jwt.decode(text, b64decode(env["TGCLI_LIST_KEY"]), algorithms=["HS256"]))

    revoke("--jti", "never-issued")
    assert read_list()["version"] == 1

    filter_cfg = {
        "keys": [{"kid": kid, "alg": "HS256", "secret_env": f"TGCLI_REV_{kid.upper()}"} for kid in keys],
        "rules": [{"match": {"prefix": "/"}}],
        "revocation": {"max_stale_s": 60, "on_unavailable": "deny"},
    }
    filter_file = tmp_path / "filter.json"
    filter_file.write_text(json.dumps(filter_cfg))
    service_cfg: dict[str, Any] = {
        "cluster": "revocation_source", "authority": "revocations.internal", "path": "/v1/revocations",
        "poll_interval_s": POLL_S, "timeout_ms": 500,
    }  # fmt: skip
    if signed:
        service_cfg["verify_key"] = {"alg": "HS256", "secret_env": "TGCLI_LIST_KEY"}
    source = RevocationSource(file=list_file)
    envoy: Envoy | None = None
    try:
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            http_filters=[harness.tokengate_filter(filter_cfg)],
            clusters=[harness.cluster("revocation_source", source.port)],
            bootstrap_extensions=[harness.revocation_service(service_cfg)],
        )
        envoy = Envoy(config, env=env, workdir=tmp_path / "envoy", concurrency=2)

        def mint(kid: str, sub: str) -> str:
            return cli_ok("mint", "--kid", kid, "--secret-env", f"TGCLI_REV_{kid.upper()}", "--sub", sub, env=env).strip()

        tokens = {"by_jti": mint("r1", "alice"), "by_sub": mint("r1", "bob"), "by_kid": mint("r2", "carol"), "kept": mint("r1", "dave")}

        def call(token: str) -> tuple[int, str | None]:
            r = envoy.request("GET", "/api", headers={"authorization": f"Bearer {token}"})  # type: ignore[union-attr]
            return (200, None) if r.status == 200 else (r.status, r.json().get("reason"))

        def cli_verdict(token: str) -> str:
            extra = ["--list-key-env", "TGCLI_LIST_KEY"] if signed else []
            proc = run_cli("verify", "--config", str(filter_file), "--path", "/api", "--revocation-list", str(list_file), *extra, token, env=env)
            return first_line(proc.stdout)

        # the first list arrives (published by the service, then copied by each worker): everything passes
        wait_until(lambda: envoy.stat("wasmcustom.tokengate.revocation.version") == 1, 10, 0.05, "list version 1 published")  # type: ignore[union-attr]
        wait_until(lambda: all(call(tokens["kept"]) == (200, None) for _ in range(6)), 5, 0.1, "the first list at both workers")
        for name, token in tokens.items():
            assert call(token) == (200, None), name
            assert cli_verdict(token) == "allow", name

        jti = jwt.decode(tokens["by_jti"], options={"verify_signature": False})["jti"]
        steps = [("by_jti", ["--jti", jti, "--exp", str(int(time.time()) + 900)]), ("by_sub", ["--sub", "bob"]), ("by_kid", ["--kid", "r2"])]
        revoked: list[str] = []
        for version, (name, entry) in enumerate(steps, start=2):
            out = revoke(*entry)
            t0 = time.monotonic()
            assert f"version {version}" in out, out
            assert read_list()["version"] == version
            revoked.append(name)
            # until the deadline: the old answer or `revoked` (each request on a fresh connection, either worker)
            first = None
            while time.monotonic() - t0 < DEADLINE_S:
                got = call(tokens[name])
                assert got in ((200, None), (401, "revoked")), got
                if got == (401, "revoked") and first is None:
                    first = time.monotonic() - t0
                time.sleep(0.05)
            assert first is not None, f"--{entry[0][2:]} entry not enforced within poll_interval_s + 1 s = {DEADLINE_S} s"
            # after it: every worker refuses every revoked token and passes the others
            for _ in range(4):
                for other, token in tokens.items():
                    want_envoy = (401, "revoked") if other in revoked else (200, None)
                    got = call(token)
                    assert got == want_envoy, f"after revoking {name} ({time.monotonic() - t0:.2f} s after the file was written): {other} got {got}"
            for other, token in tokens.items():
                want_cli = "deny revoked" if other in revoked else "allow"
                assert cli_verdict(token) == want_cli, f"verify --revocation-list after revoking {name}: {other}"
        entries = read_list()["entries"]
        assert {"sub": "bob"} in entries and {"kid": "r2"} in entries and any(e.get("jti") == jti for e in entries), entries
        assert not any(e.get("jti") == "never-issued" and "exp" in e for e in entries)
    finally:
        if envoy is not None:
            envoy.stop()
        source.stop()


# --------------------------------------------------------- 5. check-config


EXAMPLES = harness.example_names()


@pytest.mark.parametrize("name", EXAMPLES)
def test_check_config_passes_every_example(cli_path: Path, name: str) -> None:
    """Every envoy/ example, as checked in, is valid for check-config with no
    warning (secrets unset: never read)."""
    path = harness.example_path(name)
    proc = run_cli("check-config", str(path))
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == "", f"{name}: {proc.stderr}"
    assert proc.stdout.endswith(" 0 errors, 0 warnings\n"), proc.stdout
    found = harness.wasm_configurations(harness.load_yaml(path.read_text()))
    data = json.loads(cli_ok("check-config", "--json", str(path)))
    assert data["valid"] is True and data["errors"] == [] and data["warnings"] == [], data
    assert len(data["configurations"]) == len(found) >= 1, data


def test_check_config_passes_the_table_files(table: Table) -> None:
    """The bootstrap of the decision table and its filter file are valid too."""
    for f in (table.envoy_file, table.filter_file):
        proc = run_cli("check-config", str(f))
        assert proc.returncode == 0, f"{f.name}: {proc.stdout}{proc.stderr}"


def _edge(tmp: Path) -> dict[str, Any]:
    return harness.load_yaml(harness.example_path("edge").read_text())


def _filter_plugin(boot: dict[str, Any]) -> dict[str, Any]:
    manager = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return next(f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.wasm")["typed_config"]["config"]


def _service_plugin(boot: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in boot["bootstrap_extensions"] if e["name"] == "envoy.bootstrap.wasm")["typed_config"]["config"]


def _edit_json(plugin: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> None:
    value = json.loads(plugin["configuration"]["value"])
    edit(value)
    plugin["configuration"]["value"] = json.dumps(value)


def _filter(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda boot: _edit_json(_filter_plugin(boot), edit)


def _service(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda boot: _edit_json(_service_plugin(boot), edit)


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value

    return edit


def _drop_cluster(boot: dict[str, Any]) -> None:
    boot["static_resources"]["clusters"] = [c for c in boot["static_resources"]["clusters"] if c["name"] != "revocation_source"]


def _drop_host_env_key(boot: dict[str, Any]) -> None:
    _filter_plugin(boot)["vm_config"]["environment_variables"]["host_env_keys"] = ["SOMETHING_ELSE"]


def _service_vm_id(boot: dict[str, Any]) -> None:
    _service_plugin(boot)["vm_config"]["vm_id"] = "tokengate-revocations"


def _duplicate_kid(doc: dict[str, Any]) -> None:
    doc["keys"].append(dict(doc["keys"][0]))


# (id, edit of envoy/edge.yaml, strings that must all be on stderr)
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("unknown-alg", _filter(_set(["keys", 0, "alg"], "HS255")), ["keys[0].alg", "HS255"]),
    ("lower-case-method", _filter(_set(["rules", 1, "match", "methods"], ["get", "HEAD"])), ["rules[1].match.methods"]),
    ("unknown-top-field", _filter(_set(["colour"], "blue")), ["colour"]),
    ("unknown-nested-field", _filter(_set(["rules", 0, "match", "prefx"], "/x")), ["rules[0].match", "prefx"]),
    ("empty-keys", _filter(_set(["keys"], [])), ["keys"]),
    ("duplicate-kid", _filter(_duplicate_kid), ["keys[1].kid"]),
    ("short-inline-secret", _filter(_set(["keys", 0], {"kid": "demo", "alg": "HS256", "secret": base64.b64encode(b"short").decode()})), ["keys[0]", "secret"]),
    ("wrong-type", _filter(_set(["clock_skew_s"], "30")), ["clock_skew_s"]),
    ("bad-on-unavailable", _filter(_set(["revocation", "on_unavailable"], "maybe")), ["revocation.on_unavailable"]),
    ("secret-env-not-in-host-env-keys", _drop_host_env_key, ["TOKENGATE_KEY_DEMO", "host_env_keys"]),
    ("service-cluster-missing", _drop_cluster, ["revocation_source"]),
    ("differing-vm-id", _service_vm_id, ["vm_id"]),
    ("poll-interval-zero", _service(_set(["poll_interval_s"], 0)), ["poll_interval_s"]),
    ("service-missing-path", _service(lambda d: d.pop("path")), ["path"]),
    ("service-verify-key-unknown-alg", _service(_set(["verify_key", "alg"], "RS256")), ["verify_key.alg"]),
]


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json"])
@pytest.mark.parametrize("name", [b[0] for b in BROKEN])
def test_check_config_fails_broken_ones(cli_path: Path, tmp_path: Path, name: str, as_json: bool) -> None:
    """Each broken edge configuration: exit 1 and the field named on stderr."""
    _, edit, needles = next(b for b in BROKEN if b[0] == name)
    boot = _edge(tmp_path)
    edit(boot)
    f = tmp_path / ("edge.json" if as_json else "edge.yaml")
    f.write_text(json.dumps(boot) if as_json else yaml.safe_dump(boot, sort_keys=False))
    proc = run_cli("check-config", str(f))
    assert proc.returncode == 1, f"{name}: exit {proc.returncode}, want 1\nstdout {proc.stdout}\nstderr {proc.stderr}"
    for needle in needles:
        assert needle in proc.stderr, f"{name}: {needle!r} not named on stderr: {proc.stderr!r}"
    assert "TOKENGATE_KEY_DEMO=" not in proc.stderr


def test_check_config_standalone_files(cli_path: Path, tmp_path: Path) -> None:
    """A bare filter and a bare service configuration: valid ones pass, broken ones fail naming the field."""
    edge = _edge(tmp_path)
    filt = json.loads(_filter_plugin(edge)["configuration"]["value"])
    svc = json.loads(_service_plugin(edge)["configuration"]["value"])
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("filter-ok", filt, 0, ""),
        ("service-ok", svc, 0, ""),
        ("filter-unknown-alg", {**filt, "keys": [{**filt["keys"][0], "alg": "HS255"}]}, 1, "keys[0].alg"),
        ("filter-lower-method", {**filt, "rules": [{"match": {"prefix": "/", "methods": ["post"]}}]}, 1, "rules[0].match.methods"),
        ("filter-empty-keys", {**filt, "keys": []}, 1, "keys"),
        ("service-poll-zero", {**svc, "poll_interval_s": 0}, 1, "poll_interval_s"),
        ("service-unknown-field", {**svc, "pol_interval_s": 3}, 1, "pol_interval_s"),
    ]
    for name, doc, code, needle in cases:
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(doc))
        proc = run_cli("check-config", str(f))
        assert proc.returncode == code, f"{name}: exit {proc.returncode}, want {code}\n{proc.stdout}{proc.stderr}"
        assert needle in proc.stderr, f"{name}: {needle!r} not on stderr: {proc.stderr!r}"
