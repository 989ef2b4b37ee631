"""The shared attack and path corpora (``tests/data/``) against the filter in a
real Envoy: the end-to-end runner of ``tests/data/README.md``.

``tests/attacks.rs`` decides the same cases against the core at the fixed
instant ``now`` of ``attacks.json``; this module builds every token the same
way (the building logic is ported below: placeholders, base64url, the MAC,
the mutate steps, ``fill_to``, placements) but at the real clock, since Envoy
decides with its own.

One Envoy (two workers) serves the whole module with the filter configured by
``tests/data/attack_config.json`` as is (inline secrets), routed to one echo
upstream that records every request. The route adds tokengate's filter state
``wasm.tokengate`` (its JSON record: ``{"decision": …, "reason": …, "sub": …}``)
to the response as ``x-corpus-record`` (set on answers that come from the
upstream), so an allowed request and an anonymous one are told apart. For
every case:

* the status;
* a refusal carries tokengate's JSON body with the expected ``reason``, and
  the upstream never saw the request;
* an allowed or anonymous request reached the upstream once, with the
  decision expected (an anonymous record holds the decision only: the token
  is not checked there, so nothing of it is recorded), and with the case's
  ``upstream_headers`` and ``upstream_path``.

Path cases are sent with the raw ``:path`` and judged by their ``envoy``
field (what Envoy 1.40 does with ``normalize_path``, ``merge_slashes`` and
``REJECT_REQUEST`` before any filter runs): ``passes`` expects ``expect`` and
the raw path upstream; ``normalizes`` expects ``envoy.expect`` and
``envoy.path`` upstream; ``rejects`` expects Envoy's own status with no
tokengate body and nothing upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
from harness import Envoy, RawResponse, free_port
from servers import EchoServer

DATA = harness.REPO / "tests" / "data"
ATTACKS: dict[str, Any] = json.loads((DATA / "attacks.json").read_text())
PATHS: dict[str, Any] = json.loads((DATA / "paths.json").read_text())
CONFIG: dict[str, Any] = json.loads((DATA / ATTACKS["config"]).read_text())
assert PATHS["config"] == ATTACKS["config"], "both corpora are decided against one configuration"

AUTHORITY = "api.test"
RECORD_HEADER = "x-corpus-record"
URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


# ------------------------------------------------------------------ keys and MACs


@dataclass(frozen=True)
class SigningKey:
    alg: str
    secret: bytes


def load_keys() -> dict[str, SigningKey]:
    """The configured keys (base64 secrets of the config) and the attacker's (UTF-8, HS256)."""
    keys = {k["kid"]: SigningKey(k["alg"], base64.b64decode(k["secret"], validate=True)) for k in CONFIG["keys"]}
    for name, k in ATTACKS["attacker_keys"].items():
        assert name not in keys, f"attacker key {name} shadows a configured key"
        keys[name] = SigningKey("HS256", k["secret_utf8"].encode())
    return keys


KEYS = load_keys()


def mac(key_name: str, alg: str | None, data: bytes) -> bytes:
    key = KEYS[key_name]
    return hmac.new(key.secret, data, HASHES[alg or key.alg]).digest()


# ------------------------------------------------------------------ building tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_PLACEHOLDER = re.compile(r"\$(?:NOW(?:([+-])(\d+))?|(FILL))?")


def substitute(text: str, now: int, fill: int) -> str:
    """``$NOW``, ``$NOW+N``, ``$NOW-N`` → decimal seconds; ``$FILL`` → ``fill`` × ``a``; any other ``$`` is an error."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$":
            raise ValueError(f"unknown placeholder at {text[m.start():m.start() + 20]!r}")
        if m.group(3):
            return "a" * fill
        sign, digits = m.group(1), m.group(2)
        return str(now + int(digits) if sign == "+" else now - int(digits) if sign == "-" else now)

    return _PLACEHOLDER.sub(one, text)


def pad(segment: str, what: str) -> str:
    missing = -len(segment) % 4
    assert missing, f"{what}: the segment is a multiple of 4 long, padding would add nothing"
    return segment + "=" * missing


def std_alphabet(segment: str, what: str) -> str:
    changed = segment.replace("-", "+").replace("_", "/")
    assert changed != segment, f"{what}: no '-' or '_' to rewrite"
    return changed


def non_canonical(segment: str, what: str) -> str:
    assert len(segment) % 4 in (2, 3), f"{what}: the last character has no spare bits"
    return segment[:-1] + URL_ALPHABET[URL_ALPHABET.index(segment[-1]) ^ 1]


SIGNED_STEPS = {"pad_header", "pad_payload", "std_alphabet_header", "std_alphabet_payload", "noncanonical_header", "noncanonical_payload", "payload_unencoded"}


def build_with_fill(case: dict[str, Any], now: int, fill: int) -> str:
    name = case["name"]
    header = substitute(case["header_json"], now, fill)
    payload = substitute(case["payload_json"], now, fill)
    h, p = b64url(header.encode()), b64url(payload.encode())
    mutate: list[str] = case.get("mutate", [])
    # Mutations of the signed text come before the MAC: it covers them.
    for step in mutate:
        if step == "pad_header":
            h = pad(h, name)
        elif step == "pad_payload":
            p = pad(p, name)
        elif step == "std_alphabet_header":
            h = std_alphabet(h, name)
        elif step == "std_alphabet_payload":
            p = std_alphabet(p, name)
        elif step == "noncanonical_header":
            h = non_canonical(h, name)
        elif step == "noncanonical_payload":
            p = non_canonical(p, name)
        elif step == "payload_unencoded":
            p = payload
    signed = f"{h}.{p}".encode()
    signature = case["signature"]

    def the_mac() -> bytes:
        assert case.get("sign_with"), f"{name}: signature {signature!r} needs sign_with"
        return mac(case["sign_with"], case.get("sign_alg"), signed)

    if signature == "valid":
        tag = the_mac()
    elif signature == "empty":
        tag = b""
    elif signature == "flip_bit":
        tag = bytes([the_mac()[0] ^ 1]) + the_mac()[1:]
    elif signature.startswith("truncate:"):
        tag = the_mac()[: int(signature.split(":", 1)[1])]
    elif signature.startswith("zeros:"):
        tag = bytes(int(signature.split(":", 1)[1]))
    else:
        raise ValueError(f"{name}: unknown signature {signature!r}")
    segments = [h, p, b64url(tag)]
    # Mutations of the finished token: what a tamperer in transit does.
    for step in mutate:
        if step == "pad_signature":
            segments[2] = pad(segments[2], name)
        elif step == "noncanonical_signature":
            segments[2] = non_canonical(segments[2], name)
        elif step == "std_alphabet_token":
            before = ".".join(segments)
            segments = [s.replace("-", "+").replace("_", "/") for s in segments]
            assert ".".join(segments) != before, f"{name}: no '-' or '_' to rewrite"
        elif step == "append_segment":
            segments.append(b64url(b"{}"))
        elif step == "drop_signature":
            segments.pop()
        elif step == "prepend_dot":
            segments.insert(0, "")
        elif step == "tamper_payload":
            segments[1] = b64url(substitute(case["tamper_payload_json"], now, fill).encode())
        elif step not in SIGNED_STEPS:
            raise ValueError(f"{name}: unknown mutation {step!r}")
    return ".".join(segments)


def build_token(case: dict[str, Any], now: int) -> str:
    """The case's token at ``now``, exactly as ``tests/attacks.rs`` builds it."""
    if case.get("token") is not None:
        return str(case["token"])
    target = case.get("fill_to")
    if target is None:
        return build_with_fill(case, now, 0)
    # The payload grows by 4 characters per 3 filler bytes: start just below the target and step up.
    base = len(build_with_fill(case, now, 0).encode())
    assert target > base, f"{case['name']}: fill_to {target} is below the unfilled length {base}"
    fill = max((target - base) * 3 // 4 - 3, 0)
    while True:
        token = build_with_fill(case, now, fill)
        if len(token.encode()) >= target:
            assert len(token.encode()) == target, f"{case['name']}: fill_to {target} cannot be reached exactly"
            return token
        fill += 1


# ------------------------------------------------------------------ requests


def pct(text: str) -> str:
    """Percent-encode everything but the RFC 3986 unreserved characters."""
    out = []
    for b in text.encode():
        c = chr(b)
        out.append(c if c.isascii() and (c.isalnum() or c in "-._~") else f"%{b:02X}")
    return "".join(out)


def build_request(placement: str, extra: list[list[str]], path: str, token: str) -> tuple[str, list[tuple[str, str]]]:
    """(path, header lines in order) for a placement, as ``tests/attacks.rs`` builds them (lines not joined)."""
    path = path.replace("{token}", pct(token))
    lines: list[tuple[str, str]] = []
    query: list[str] = []
    cookies: list[str] = []
    for place in placement.split("+"):
        if place == "authorization":
            lines.append(("authorization", f"Bearer {token}"))
        elif place == "x-api-key":
            lines.append(("x-api-key", token))
        elif place == "query":
            query.append(f"access_token={pct(token)}")
        elif place == "cookie":
            cookies.append(f"tg_token={token}")
        elif place != "none":
            raise ValueError(f"unknown placement {place!r}")
    if query:
        path += ("&" if "?" in path else "?") + "&".join(query)
    if cookies:
        lines.append(("cookie", "; ".join(cookies)))
    for name, value in extra:
        lines.append((name.lower(), value.replace("{token}", token)))
    return path, lines


def parse_raw_response(data: bytes) -> RawResponse:
    """A response read off a socket by ``Envoy.raw`` (content-length framed, first response only)."""
    assert data, "no response at all: Envoy closed the connection without answering"
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    headers = [(k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
    length = next((int(v) for k, v in headers if k == "content-length"), len(rest))
    return RawResponse(int(parts[1]), headers, rest[:length], parts[2] if len(parts) > 2 else "")


# ------------------------------------------------------------------ the Envoy


@dataclass
class Corpus:
    envoy: Envoy
    echo: EchoServer

    def send(self, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[RawResponse, list[dict[str, Any]]]:
        """Send one request (path verbatim, headers as separate lines); return the response and what the upstream got for it."""
        before = self.echo.count
        if path == "":
            # http.client would send "/": put the empty request-target on the socket ourselves.
            lines = [f"{method}  HTTP/1.1", f"host: {AUTHORITY}", *(f"{k}: {v}" for k, v in headers), "connection: close"]
            resp = parse_raw_response(self.envoy.raw(("\r\n".join(lines) + "\r\n\r\n").encode()))
        else:
            pairs = [(k, v.encode()) for k, v in headers]
            resp = self.envoy.request(method, path, headers=pairs, host=AUTHORITY)  # type: ignore[arg-type]
        with self.echo.lock:
            seen = list(self.echo.requests[before:])
        return resp, seen


@pytest.fixture(scope="module")
def corpus(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        routes = [
            {
                "match": {"prefix": "/"},
                "route": {"cluster": "upstream"},
                "response_headers_to_add": [
                    {"header": {"key": RECORD_HEADER, "value": "%FILTER_STATE(wasm.tokengate:PLAIN)%"}},
                ],
            }
        ]
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[harness.tokengate_filter(CONFIG, name="tokengate-corpus")],
            routes=routes,
        )
        envoy = Envoy(config, concurrency=2, workdir=tmp_path_factory.mktemp("corpus-envoy"))
        yield Corpus(envoy, echo)
    finally:
        if envoy is not None:
            envoy.stop()  # SIGTERM/SIGKILL by PID
        echo.stop()


# ------------------------------------------------------------------ judging


def tokengate_body(resp: RawResponse) -> dict[str, Any] | None:
    """tokengate's JSON refusal body (docs/responses.md, "The answer"), or None when the response is not one."""
    ctype = (resp.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "reason" in body and "error" in body else None


def decision_record(resp: RawResponse) -> dict[str, Any] | None:
    """tokengate's record from the ``x-corpus-record`` header, or None when
    the response has none (a local reply, or Envoy printed "-"); a header
    that is not a JSON object fails the test."""
    value = resp.header(RECORD_HEADER)
    if value is None or value in ("", "-"):
        return None
    record = json.loads(value)
    assert isinstance(record, dict) and isinstance(record.get("decision"), str), f"{RECORD_HEADER}: {value!r}"
    return record


def header_values(record: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in record["header_list"] if k == name]


def judge(resp: RawResponse, seen: list[dict[str, Any]], expect: dict[str, Any], upstream_path: str | None = None) -> list[str]:
    """Every way the outcome differs from ``expect`` (empty: it agrees).

    ``upstream_path`` is the path the upstream must receive when the case
    itself names none (the path cases: Envoy's path)."""
    wrong: list[str] = []
    body = tokengate_body(resp)
    state = decision_record(resp)
    decision = state["decision"] if state else None
    answered_by = f"upstream path {seen[0]['path']!r}" if len(seen) == 1 and resp.header("x-echo") else f"body {resp.text[:300]!r}"
    got = f"status {resp.status}, {RECORD_HEADER} {state!r}, {answered_by}, upstream saw {len(seen)} request(s)"
    if resp.status != expect["status"]:
        wrong.append(f"status: expected {expect['status']}, got {resp.status}")
    if expect["decision"] == "deny":
        if body is None:
            wrong.append(f"expected a tokengate refusal with reason {expect['reason']!r}, got no tokengate body")
        elif body["reason"] != expect["reason"]:
            wrong.append(f"reason: expected {expect['reason']!r}, got {body['reason']!r}")
        if seen:
            wrong.append(f"a refused request reached the upstream: {[r['path'] for r in seen]}")
        if state is not None and (decision, state.get("reason")) != ("deny", expect["reason"]):
            wrong.append(f"record: expected decision 'deny', reason {expect['reason']!r}, got {state!r}")
    else:
        if body is not None:
            wrong.append(f"expected {expect['decision']}, got a tokengate refusal with reason {body['reason']!r}")
        if len(seen) != 1:
            wrong.append(f"expected the upstream to get the request once, it got {len(seen)}")
        if decision != expect["decision"]:
            wrong.append(f"decision: expected {expect['decision']!r}, got {decision!r}")
        elif state is not None and "reason" in state:
            wrong.append(f"record: a reason on an {decision} decision: {state!r}")
        elif decision == "anonymous" and state != {"decision": "anonymous"}:
            wrong.append(f"record: an anonymous decision records nothing of the token, got {state!r}")
        if len(seen) == 1:
            record = seen[0]
            for name, value in expect.get("upstream_headers", {}).items():
                values = header_values(record, name)
                want = [] if value is None else [value]
                if values != want:
                    wrong.append(f"upstream header {name}: expected {value!r}, got {values if len(values) != 1 else values[0]!r}")
            want_path = expect.get("upstream_path", upstream_path)
            if want_path is not None and record["path"] != want_path:
                wrong.append(f"upstream path: expected {want_path!r}, got {record['path']!r}")
    if wrong:
        wrong.append(f"(got: {got})")
    return wrong


def excerpt(token: str) -> str:
    return token if len(token) <= 160 else f"{token[:160]}…({len(token)} bytes)"


# ------------------------------------------------------------------ the attack corpus


@pytest.mark.parametrize("case", ATTACKS["cases"], ids=[c["name"] for c in ATTACKS["cases"]])
def test_attack(corpus: Corpus, case: dict[str, Any]) -> None:
    expect = case["expect"]
    token = build_token(case, int(time.time()))
    path, headers = build_request(case["placement"], case.get("headers", []), case["path"], token)
    resp, seen = corpus.send(case["method"], path, headers)
    wrong = judge(resp, seen, expect)
    rule = f"\n  rule: {case['rule']}" if "rule" in case else ""
    assert not wrong, f"case {case['name']}\n  guards: {case['guards']}{rule}\n  expected: {expect}\n  token: {excerpt(token)}\n  " + "\n  ".join(wrong)


# ------------------------------------------------------------------ the path corpus


@pytest.mark.parametrize("case", PATHS["cases"], ids=[c["name"] for c in PATHS["cases"]])
def test_path(corpus: Corpus, case: dict[str, Any]) -> None:
    envoy = case["envoy"]
    # Every path request carries the token of the first attack case (valid, scope read, no role).
    token = build_token(ATTACKS["cases"][0], int(time.time()))
    resp, seen = corpus.send(case["method"], case["raw_path"], [("authorization", f"Bearer {token}")])
    where = f"case {case['name']} (raw path {case['raw_path']!r}, Envoy {envoy['action']})\n  guards: {case['guards']}\n  "
    if envoy["action"] == "rejects":
        # Envoy answers itself, before any filter: its own status, no tokengate body, nothing upstream.
        wrong = []
        if resp.status != envoy["status"]:
            wrong.append(f"status: expected Envoy's {envoy['status']}, got {resp.status}")
        body = tokengate_body(resp)
        if body is not None:
            wrong.append(f"expected Envoy's own refusal, got tokengate's (reason {body['reason']!r}): the filter ran")
        if decision_record(resp) is not None:
            wrong.append(f"a tokengate decision was recorded: {resp.header(RECORD_HEADER)!r}")
        if seen:
            wrong.append(f"the upstream got the request: {[r['path'] for r in seen]}")
        if wrong:
            wrong.append(f"(got: status {resp.status}, body {resp.text[:300]!r})")
    elif envoy["action"] == "passes":
        wrong = judge(resp, seen, case["expect"], upstream_path=case["raw_path"])
    elif envoy["action"] == "normalizes":
        wrong = judge(resp, seen, envoy["expect"], upstream_path=envoy["path"])
    else:
        raise AssertionError(f"{case['name']}: unknown envoy.action {envoy['action']!r}")
    assert not wrong, where + "\n  ".join(wrong)
