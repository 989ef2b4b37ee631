"""What the gate decided against how common upstreams route the path they
received, in a real Envoy: no request reaches the upstream under a rule the
gate did not apply.

The gate reads a path one way (docs/configuration.md, "Rules": unreserved escapes decoded,
``;`` parameters cut from each segment, ``//`` merged, ``.`` and ``..``
resolved, and a segment that is ``.`` or ``..`` only once its parameters are
cut refused); upstream frameworks read the path they receive their own way.
A hole found this way: Envoy (``normalize_path: true``) decodes
``%2e%2e;`` to ``..;`` and leaves it in place, and the filter used to cut
the ``;`` parameter and resolve the ``..``: ``GET /internal/%2e%2e;/healthz``
was decided as ``/healthz`` (anonymous) while an upstream parsing URLs the
WHATWG way routed ``/internal/..;/healthz`` to its internal handler. The gate
now refuses such segments (400 ``bad_request``).

The check here is differential. ``MODELS`` are small models of how common
upstreams turn the raw request-target they receive into the path they route,
each documented with who reads paths that way:

* ``servlet``: Tomcat and the Spring apps on it: cut ``;`` parameters from
  each raw segment, percent-decode, merge ``//``, resolve ``.``/``..`` (a
  ``..`` above the root, a backslash, ``%2F`` or ``%00`` is Tomcat's 400);
* ``whatwg``: the WHATWG URL parser (Node's ``new URL(req.url, base)``,
  Deno's and Bun's ``Request.url``): ``.``/``%2e`` and ``..``/``.%2e``/
  ``%2e.``/``%2e%2e`` (any case) are dot segments and resolve, ``\\`` is a
  separator, nothing else is decoded, ``..;`` is a literal segment;
* ``express``: Express's router: the raw pathname, matched
  case-insensitively (its default), no decoding, no dot resolution;
* ``go``: Go's ``net/http``: the percent-decoded ``URL.Path`` cleaned by
  ``path.Clean`` (what ``ServeMux`` redirects to and ``http.FileServer``
  serves): ``//`` merged, dots resolved, ``..`` above the root stays there;
* ``nginx``: percent-decode, merge ``//``, resolve dots (``..`` above the
  root is a 400), ``;`` has no meaning.

``rule_for`` matches a path against ``RULES`` by the rule semantics of docs/configuration.md
(first match wins; a prefix fits on a segment boundary: ``/admin`` fits
``/admin``, ``/admin/``, ``/admin/x``, never ``/adminx``), and ``outcome``
says what that rule decides for the token sent (valid, no ``admin`` role).

One Envoy (one worker, the harness's ``normalize_path``, ``merge_slashes``
and escaped slashes refused) runs the gate of ``GATE`` in front of an echo
upstream. The route copies tokengate's filter state (its JSON record) into
the response header ``x-gate-record``, so the decision the gate took is read
from the response, not guessed. Every path of ``ATTACK_PATHS`` and every
``raw_path`` of ``tests/data/paths.json`` goes out over HTTP/1.1 (raw bytes)
and, when it is an origin-form path, over HTTP/2, each with the token in
``authorization``; then:

* a request the upstream received was decided ``allow`` or ``anonymous``,
  and under every model's reading of the path the upstream received, the
  rule that reading falls under decides the same;
* a request refused (by the gate or by Envoy) never reached the upstream.

What Envoy 1.40 does first (measured here, HTTP/1.1 and HTTP/2 alike): it
resolves a literal ``..;``, ``..;x`` as ``..`` and ``.;`` as ``.``
(``/admin/..;/users`` reaches the filter and the upstream as ``/users``,
``/public/.;/admin`` as ``/public/admin``), decodes ``%2e`` but leaves the
``..;`` or ``.;`` it spells in place, and passes ``%3B``/``%3b`` and
``%25`` escapes on as they came (``/public/..%3b/admin`` reaches the
upstream unchanged, anonymous under ``/public``, and every model reads it
there too).

``test_the_models_catch_the_old_bypass`` shows the check can fail: fed the
old gate's decision for ``/internal/..;/healthz``, it names the models that
route it elsewhere.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import harness
from clients import Reply, h2_headers, h2_request, http1_exchange, http1_head
from harness import Envoy, free_port
from servers import EchoServer

KEY = harness.new_key(32)
KEY_ENV = "TG_E2E_DIFF_KEY"
KID = "diff-1"
AUTHORITY = "api.test"
RECORD_HEADER = "x-gate-record"

# (prefix, requirement): anonymous, deny, a role, or any valid token.
RULES: list[tuple[str, dict[str, Any]]] = [
    ("/public", {"anonymous": True}),
    ("/healthz", {"anonymous": True}),
    ("/admin", {"roles": ["admin"]}),
    ("/internal", {"deny": True}),
    ("/", {}),
]

GATE: dict[str, Any] = {
    "keys": [{"kid": KID, "alg": "HS256", "secret_env": KEY_ENV}],
    "claims_to_headers": {"sub": "x-auth-subject"},
    "rules": [{"match": {"prefix": prefix}, **outcome} for prefix, outcome in RULES],
}

# Dot segments behind path parameters as Envoy leaves them (it decodes
# %2e but resolves only a literal `..;`/`.;`): the gate refuses these.
REFUSED_DOT_SEGMENTS = [
    "/internal/%2e%2e;/healthz",
    "/admin/%2e%2e;/healthz",
    "/admin/%2e%2e;/users",
    "/public/%2e%2e;/admin",
    "/admin/%2E%2e;x/public",
    "/internal/%2e%2e;x/healthz",
    "/internal/.%2e;/healthz",
    "/internal/%2e.;/public",
    "/public/%2e;/admin",
    "/healthz/%2e%2e;/internal",
]

# With their neighbours: literal `..;`/`.;` (Envoy resolves them), a
# parameter before `..`, encoded dots without a parameter, double encoding,
# an encoded `;`.
ATTACK_PATHS = REFUSED_DOT_SEGMENTS + [
    "/admin/..;/users",
    "/public/.;/admin",
    "/public;x/../admin",
    "/public/%2e%2e/admin",
    "/public/%252e%252e;/admin",
    "/admin/%252e%252e;/users",
    "/internal/..;x/healthz",
    "/public/..%3b/admin",
    "/public/%2E%2E%3B/admin",
]

PATHS: dict[str, Any] = json.loads((harness.REPO / "tests" / "data" / "paths.json").read_text())


# ------------------------------------------------------------------ models


def percent_decode(path: str) -> str | None:
    """Every %XX escape decoded (UTF-8, undecodable bytes kept apart); None
    when an escape is invalid, which these upstreams answer with 400."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", path):
        return None
    return urllib.parse.unquote(path, errors="surrogateescape")


def resolve_dots(path: str, *, above_root: str) -> str | None:
    """RFC 3986 section 5.2.4 on a rooted path: ``.`` dropped, ``..`` drops the
    segment before; a final ``.``/``..`` leaves a trailing slash. A ``..`` at
    the root stays there (``above_root="stay"``) or makes the path invalid
    (``"refuse"``: None)."""
    if not path.startswith("/"):
        return None
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            elif above_root == "refuse":
                return None
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def merge_slashes(path: str) -> str:
    return re.sub("/{2,}", "/", path)


def target_path(target: str, *, fragment: bool) -> str:
    """The path of a request-target: cut at ``?`` (and at ``#`` when the parser knows fragments)."""
    path = target.split("?", 1)[0]
    return path.split("#", 1)[0] if fragment else path


def servlet(target: str) -> str | None:
    """Tomcat (and Spring on it): ``;`` parameters cut from each raw segment
    first, then percent-decoding, then ``//`` merged and dots resolved
    (CoyoteAdapter: parsePathParameters, decode, normalize). Tomcat answers
    400 to a backslash, an encoded ``/``, a NUL, a ``..`` above the root."""
    raw = "/".join(seg.split(";", 1)[0] for seg in target_path(target, fragment=False).split("/"))
    if re.search(r"%2f|%00", raw, re.IGNORECASE):
        return None
    decoded = percent_decode(raw)
    if decoded is None or "\\" in decoded or "\x00" in decoded:
        return None
    return resolve_dots(merge_slashes(decoded), above_root="refuse")


_SINGLE_DOT = {".", "%2e"}
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}


def whatwg(target: str) -> str | None:
    """The WHATWG URL parser's path of an http(s) URL: ``\\`` is ``/``;
    ``.``/``%2e`` and ``..``/``.%2e``/``%2e.``/``%2e%2e`` (any case) are dot
    segments and resolve (``..`` at the root stays there); every other
    segment is kept as it is: no decoding, no ``;`` cutting (``..;`` is a
    literal segment), no merging of ``//``."""
    path = target_path(target, fragment=True).replace("\\", "/")
    if not path.startswith("/"):
        return None
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg.lower() in _DOUBLE_DOT:
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg.lower() in _SINGLE_DOT:
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def express(target: str) -> str | None:
    """Express's router: the raw pathname (parseurl), matched
    case-insensitively (``caseSensitive`` is off by default): no decoding,
    no dot resolution. The reading is lower-cased; the rules are lower case."""
    path = target_path(target, fragment=True)
    return path.lower() if path.startswith("/") else None


def go(target: str) -> str | None:
    """Go's net/http: ``URL.Path`` is the percent-decoded path (an invalid
    escape is a 400), cleaned by ``path.Clean``: ``//`` merged, ``.`` dropped,
    ``..`` resolved and kept at the root, the trailing slash dropped."""
    decoded = percent_decode(target_path(target, fragment=False))
    if decoded is None or not decoded.startswith("/"):
        return None
    parts: list[str] = []
    for seg in decoded.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def nginx(target: str) -> str | None:
    """nginx (ngx_http_parse_complex_uri, ``merge_slashes on``): escapes
    decoded (an invalid one, or a NUL, is a 400), ``//`` merged, dots
    resolved, a ``..`` above the root a 400; ``;`` means nothing."""
    decoded = percent_decode(target_path(target, fragment=False))
    if decoded is None or "\x00" in decoded:
        return None
    return resolve_dots(merge_slashes(decoded), above_root="refuse")


MODELS: dict[str, Callable[[str], str | None]] = {"servlet": servlet, "whatwg": whatwg, "express": express, "go": go, "nginx": nginx}


# ------------------------------------------------------------------ rules


def fits(prefix: str, path: str) -> bool:
    """A prefix fits on a segment boundary (docs/configuration.md, "Rules")."""
    if prefix == "/":
        return path.startswith("/")
    return path == prefix or path.startswith(prefix + "/")


def rule_for(path: str) -> str | None:
    """The prefix of the first rule that fits ``path`` (first match wins), or None."""
    return next((prefix for prefix, _ in RULES if fits(prefix, path)), None)


def outcome(path: str) -> str:
    """What the rule ``path`` falls under decides for the token sent (valid, no role)."""
    prefix = rule_for(path)
    if prefix is None:
        return "deny (no_rule)"
    requirement = dict(RULES)[prefix]
    if requirement.get("anonymous"):
        return "anonymous"
    if requirement.get("deny"):
        return "deny (denied)"
    if requirement.get("roles"):
        return "deny (insufficient_scope)"
    return "allow"


def disagreements(upstream_path: str, decision: str) -> list[str]:
    """Every model whose reading of ``upstream_path`` falls under a rule that
    decides otherwise than ``decision`` (a model that refuses the path, None,
    routes nothing)."""
    wrong = []
    for name, model in MODELS.items():
        reading = model(upstream_path)
        if reading is not None and outcome(reading) != decision:
            wrong.append(f"{name} reads {reading!r}: rule {rule_for(reading)!r} decides {outcome(reading)}")
    return wrong


def test_the_models_read_as_documented() -> None:
    """The readings the docstrings above describe, on the paths that matter."""
    assert {n: m("/internal/..;/healthz") for n, m in MODELS.items()} == {
        "servlet": "/healthz", "whatwg": "/internal/..;/healthz", "express": "/internal/..;/healthz",
        "go": "/internal/..;/healthz", "nginx": "/internal/..;/healthz",
    }  # fmt: skip
    assert {n: m("/public/%2E%2e/admin?x=/y") for n, m in MODELS.items()} == {
        "servlet": "/admin", "whatwg": "/admin", "express": "/public/%2e%2e/admin", "go": "/admin", "nginx": "/admin",
    }  # fmt: skip
    assert {n: m("/public/..%3B/admin") for n, m in MODELS.items()} == {
        "servlet": "/public/..;/admin", "whatwg": "/public/..%3B/admin", "express": "/public/..%3b/admin",
        "go": "/public/..;/admin", "nginx": "/public/..;/admin",
    }  # fmt: skip
    assert servlet("/..;/admin") is None and nginx("/../admin") is None and go("/../admin") == "/admin" and whatwg("/%2e%2e/admin") == "/admin"
    assert servlet("/a%zz") is None and whatwg("/a%zz") == "/a%zz"
    assert [rule_for(p) for p in ("/admin", "/admin/", "/admin/x", "/adminx", "/healthz;x", "/")] == ["/admin", "/admin", "/admin", "/", "/", "/"]


def test_the_models_catch_the_old_bypass() -> None:
    """The old filter cut ``;x`` and resolved ``..``: it decided
    ``/internal/%2e%2e;/healthz`` (``/internal/..;/healthz`` upstream) as
    ``/healthz``, anonymous. The check names every model that routes it to
    the denied ``/internal`` instead; the servlet model agrees with the old
    reading, which is why neither reading may be taken."""
    wrong = disagreements("/internal/..;/healthz", "anonymous")
    assert [w.split(" ", 1)[0] for w in wrong] == ["whatwg", "express", "go", "nginx"], wrong
    assert all("'/internal' decides deny (denied)" in w for w in wrong), wrong
    # and what the gate does decide for a path every model reads alike raises nothing
    assert disagreements("/public/..%3B/admin", "anonymous") == []
    assert disagreements("/users", "allow") == []


# ------------------------------------------------------------------ the Envoy


@dataclass
class Sent:
    """One request: how it went out, the reply, and what the upstream received for it."""

    protocol: str
    target: str
    reply: Reply
    upstream: list[dict[str, Any]]

    @property
    def record(self) -> dict[str, Any] | None:
        value = self.reply.header(RECORD_HEADER)
        if value in (None, "", "-"):
            return None
        record = json.loads(value)
        assert isinstance(record, dict), f"{RECORD_HEADER}: {value!r}"
        return record

    def describe(self) -> str:
        seen = [r["path"] for r in self.upstream]
        return f"{self.protocol} GET {self.target!r}: {self.reply.describe()[:120]}, record {self.record}, upstream saw {seen}"


class Differential:
    """The gate's Envoy and its echo upstream."""

    def __init__(self, envoy: Envoy, echo: EchoServer) -> None:
        self.envoy = envoy
        self.echo = echo
        self.token = harness.mint(KEY, kid=KID, sub="alice", scope="orders:read")

    def send(self, protocol: str, target: str) -> Sent:
        port = int(self.envoy.listener_port or 0)
        auth = ("authorization", f"Bearer {self.token}")
        mark = self.echo.count
        if protocol == "HTTP/1.1":
            reply = http1_exchange(port, http1_head("GET", target, [auth], host=AUTHORITY))
        else:
            reply = h2_request(port, h2_headers("GET", target, AUTHORITY, auth))
        with self.echo.lock:
            seen = list(self.echo.requests[mark:])
        return Sent(protocol, target, reply, seen)


@pytest.fixture(scope="module")
def differential(wasm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Differential]:
    echo = EchoServer()
    envoy: Envoy | None = None
    try:
        routes = [
            {
                "match": {"prefix": "/"},
                "route": {"cluster": "upstream"},
                "response_headers_to_add": [{"header": {"key": RECORD_HEADER, "value": "%FILTER_STATE(wasm.tokengate:PLAIN)%"}}],
            }
        ]
        config = harness.bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[harness.tokengate_filter(GATE)],
            routes=routes,
        )
        envoy = Envoy(config, env={KEY_ENV: KEY}, concurrency=1, workdir=tmp_path_factory.mktemp("differential"))
        yield Differential(envoy, echo)
    finally:
        if envoy is not None:
            envoy.stop()  # by PID
        echo.stop()


def protocols(target: str) -> list[str]:
    """HTTP/1.1 always; HTTP/2 for an origin-form path (``*``, ``admin``, an
    absolute URL or an empty target are HTTP/1.1 request-target forms)."""
    return ["HTTP/1.1", "HTTP/2"] if target.startswith("/") else ["HTTP/1.1"]


def judge(sent: Sent) -> list[str]:
    """What is wrong with one request, judged against the models (empty: nothing)."""
    record = sent.record
    if not sent.upstream:
        return []  # refused: by the gate (its record says deny) or by Envoy (no record)
    wrong = []
    if len(sent.upstream) != 1:
        wrong.append(f"the upstream received it {len(sent.upstream)} times")
    decision = record.get("decision") if record else None
    if decision not in ("allow", "anonymous"):
        wrong.append(f"it reached the upstream with the gate's record {record!r}")
        return wrong
    for upstream in sent.upstream:
        wrong += disagreements(upstream["path"], decision)
    return wrong


CASES = [(p, p) for p in ATTACK_PATHS] + [(c["name"], c["raw_path"]) for c in PATHS["cases"]]


@pytest.mark.parametrize("target", [t for _, t in CASES], ids=[name for name, _ in CASES])
def test_what_reaches_the_upstream_is_routed_under_the_rule_the_gate_applied(differential: Differential, target: str) -> None:
    """Each path over HTTP/1.1 and HTTP/2: if the upstream received it, every
    model routes what it received under a rule deciding what the gate decided."""
    for protocol in protocols(target):
        sent = differential.send(protocol, target)
        wrong = judge(sent)
        assert not wrong, f"{sent.describe()}\n  the gate decided {sent.record}, but:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("target", REFUSED_DOT_SEGMENTS)
def test_dot_segments_hidden_behind_parameters_are_bad_requests(differential: Differential, target: str) -> None:
    """Envoy leaves ``%2e%2e;`` (and ``.%2e;``, ``%2e;``) as ``..;``/``.;``:
    the gate refuses the segment, whichever rule the rest of the path names,
    and nothing reaches the upstream."""
    for protocol in protocols(target):
        sent = differential.send(protocol, target)
        assert sent.reply.status == 400 and not sent.upstream, sent.describe()
        assert sent.reply.json()["reason"] == "bad_request", sent.describe()
        assert sent.record == {"decision": "deny", "reason": "bad_request"}, sent.describe()


def test_the_corpus_exercised_every_outcome(differential: Differential) -> None:
    """The paths above are no vacuous check: some reached the upstream
    anonymously, some with the token checked, some were refused."""
    decisions: dict[str, int] = {}
    for target in ["/public/..%3b/admin", "/admin/..;/users", "/internal/%2e%2e;/healthz", "/public/%2e%2e/admin"]:
        sent = differential.send("HTTP/1.1", target)
        key = (sent.record or {}).get("decision", "none") + ("+upstream" if sent.upstream else "")
        decisions[key] = decisions.get(key, 0) + 1
    assert decisions == {"anonymous+upstream": 1, "allow+upstream": 1, "deny": 2}, decisions
