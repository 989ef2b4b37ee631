"""The Envoy configurations checked in under envoy/ run exactly as they are,
the way their header comments and docs/configuration.md tell: from the repository root,
``envoy -c envoy/<name>.yaml``, with nothing but the documented environment
variables, on the file's own fixed ports on 127.0.0.1. No rendering, no copy.

Starting them needs their fixed ports: each test that starts one holds
``harness.fixed_ports`` (a machine-wide lock, then a bounded wait until the
ports are free) so that two runs never collide.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import REPO, access_record, example_env_vars, example_path, example_ports, fixed_ports, load_yaml, mint, sign_list, validate, wait_until
from clients import h2_headers, h2_request, http1_exchange, http1_head
from servers import EchoServer, RevocationSource

ISS = "https://auth.example.com"
AUD = "orders-api"
WASM_RELATIVE = "target/wasm32-wasip1/release/tokengate.wasm"
EXAMPLES = harness.example_names()


# The members of each example's access log line.
ACCESS_LOG_KEYS = {
    "minimal": {"method", "path", "protocol", "response_code", "tokengate"},
    "edge": {"start_time", "method", "path", "protocol", "response_code", "tokengate", "client", "upstream", "duration_ms"},
}
RECORD_KEYS = {"decision", "reason", "sub", "jti", "kid"}


def test_the_examples_are_minimal_and_edge() -> None:
    assert EXAMPLES == ["edge", "minimal"] == sorted(ACCESS_LOG_KEYS)


def _env(name: str, tmp: Path, demo_key: str, list_key: str) -> dict[str, str]:
    """A value for every variable the example's header tells to export, and nothing else."""
    cert, key = harness.make_self_signed_cert(tmp)
    values = {
        "TOKENGATE_KEY_DEMO": demo_key,
        "TOKENGATE_LIST_KEY": list_key,
        "TOKENGATE_TLS_CERT": cert.read_text(),
        "TOKENGATE_TLS_KEY": key.read_text(),
    }
    wanted = harness.documented_env_vars(example_path(name).read_text())
    assert wanted <= set(values), f"{name} documents variables this test does not know: {wanted - set(values)}"
    return {k: values[k] for k in sorted(wanted)}


def _walk(node: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a parsed YAML document."""
    found: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found += _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            found += _walk(v, key)
    return found


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_a_runnable_file_not_a_template(name: str) -> None:
    text = example_path(name).read_text()
    header, _, body = text.partition("\nadmin:")
    assert body, f"{name}: no admin section"
    assert "$" not in body, f"{name}: a placeholder or a shell expansion outside the header comment"
    config = load_yaml(text)
    # the module, from the repository root
    assert _walk(config, "filename") == [WASM_RELATIVE] * len(_walk(config, "vm_config")), name
    # every address on loopback, admin included
    assert set(a["address"] for a in _walk(config, "socket_address")) == {"127.0.0.1"}, name
    # the header documents exactly the variables the file reads
    assert example_env_vars(config) == harness.documented_env_vars(text), name
    # ...and how to build and run it
    for needle in ("cargo build --release --target wasm32-wasip1", f"envoy --mode validate -c envoy/{name}.yaml", f"envoy -c envoy/{name}.yaml"):
        assert needle in header, f"{name}: the header comment does not say {needle!r}"
    for port in example_ports(name).values():
        assert str(port) in header, f"{name}: port {port} is not in the header comment"
    # no secret in the file: keys come from secret_env through host_env_keys
    for root, conf in harness.wasm_configurations(config):
        assert not _walk(conf, "secret"), f"{name}: inline secret in {root}"
    assert not _walk(config, "key_values"), f"{name}: a secret in vm_config key_values"
    # the access log: one JSON object per line (Envoy escapes each value), the one filter-state key
    assert not _walk(config, "text_format_source") and not _walk(config, "text_format"), f"{name}: a text access log"
    formats = _walk(config, "json_format")
    assert formats and all(set(f) == ACCESS_LOG_KEYS[name] for f in formats), (name, formats)
    assert all(f["tokengate"] == "%FILTER_STATE(wasm.tokengate:PLAIN)%" and f["path"] == "%PATH(NQ:PATH)%" for f in formats), (name, formats)
    assert "wasm.tokengate." not in text, name
    # what a dead VM does, and names with underscores
    assert _walk(config, "failure_policy") == ["FAIL_RELOAD"], name
    assert _walk(config, "headers_with_underscores_action") == ["REJECT_REQUEST"], name


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates_as_checked_in(name: str, wasm_path: Path, tmp_path: Path, demo_key: str, list_key: str) -> None:
    env = _env(name, tmp_path, demo_key, list_key)
    ok, out = validate(Path("envoy") / f"{name}.yaml", env, cwd=REPO, inherit_env=False)
    assert ok, f"{name}: {harness.tail(out)}"
    # each variable is needed (validation does not start the revocation service, so not its key)
    for var in env:
        if var == "TOKENGATE_LIST_KEY":
            continue
        ok, out = validate(Path("envoy") / f"{name}.yaml", {k: v for k, v in env.items() if k != var}, cwd=REPO, inherit_env=False)
        assert not ok, f"{name}: valid without {var}"
        for secret in env.values():
            assert secret.strip() not in out
    # the filter refuses to start without its secret, and names the variable
    ok, out = validate(Path("envoy") / f"{name}.yaml", {k: v for k, v in env.items() if k != "TOKENGATE_KEY_DEMO"}, cwd=REPO, inherit_env=False)
    assert "TOKENGATE_KEY_DEMO" in out, harness.tail(out)
    # the module path is relative to the repository root: elsewhere, Envoy cannot find it
    ok, out = validate(example_path(name), env, cwd=tmp_path, inherit_env=False)
    assert not ok and WASM_RELATIVE in out, harness.tail(out)


def _records(envoy: harness.Envoy, method: str, path: str, count: int) -> list[dict[str, Any] | None]:
    """The tokengate records of the access log lines of ``method path``, once there are ``count`` of them."""

    def find() -> list[dict[str, Any]] | None:
        found = [e for e in envoy.access_log_entries() if (e["method"], e["path"]) == (method, path)]
        return found if len(found) >= count else None

    return [access_record(entry) for entry in wait_until(find, 5, 0.1, f"{count} access log lines of {method} {path}")]


def _entries(envoy: harness.Envoy, name: str) -> list[dict[str, Any]]:
    """Every access log line of an example's Envoy: each one JSON object with
    exactly the example's members, and tokengate's record (when there is
    one) a JSON object of the documented members only."""
    entries = envoy.access_log_entries()
    for entry in entries:
        assert set(entry) == ACCESS_LOG_KEYS[name], entry
        record = access_record(entry)
        assert record is None or (set(record) <= RECORD_KEYS and "decision" in record), entry
    return entries


def test_minimal_serves_as_checked_in(envoys, wasm_path: Path, tmp_path: Path, demo_key: str, list_key: str) -> None:
    env = _env("minimal", tmp_path, demo_key, list_key)
    ports = example_ports("minimal")
    with fixed_ports(ports.values()):
        echo = EchoServer(port=ports["cluster:upstream"])
        try:
            envoy = envoys.from_example("minimal", env=env)
            assert envoy.listener_port == ports["listener:main"] and envoy.admin_port == ports["admin"]
            assert envoy.get("/healthz").status_code == 200
            r = envoy.get("/things")
            assert r.status_code == 401 and r.json()["reason"] == "missing", r.text
            assert echo.count == 1
            token = mint(demo_key, sub="alice", jti="m-1")
            r = envoy.get("/things", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            assert "authorization" not in r.json()["headers"]  # forward_token defaults to false
            assert echo.count == 2
            forged = mint(harness.new_key(), sub="mallory", jti="m-2")
            r = envoy.get("/things", headers={"authorization": f"Bearer {forged}"})
            assert r.status_code == 401 and r.json()["reason"] == "bad_signature", r.text
            assert echo.count == 2

            assert _records(envoy, "GET", "/healthz", 1) == [{"decision": "anonymous"}]
            records = _records(envoy, "GET", "/things", 3)
            assert records == [
                {"decision": "deny", "reason": "missing"},
                {"decision": "allow", "sub": "alice", "jti": "m-1", "kid": "demo"},
                {"decision": "deny", "reason": "bad_signature"},  # nothing unverified logged
            ], records
            assert token not in envoy.access_log_text() and token not in envoy.log_text()
            assert len(_entries(envoy, "minimal")) == 4  # one line per request
        finally:
            envoys.stop_all()  # before the fixed ports' lock is released
            echo.stop()


def test_edge_serves_as_checked_in(envoys, wasm_path: Path, tmp_path: Path, demo_key: str, list_key: str) -> None:
    env = _env("edge", tmp_path, demo_key, list_key)
    ports = example_ports("edge")
    cert = tmp_path / "server.crt"  # the pair _env made; the client trusts it
    with fixed_ports(ports.values()):
        echo = EchoServer(port=ports["cluster:upstream"])
        source = RevocationSource(port=ports["cluster:revocation_source"])
        try:
            # a signed list needs generated_at: its age is counted from it
            source.set(body=sign_list({"version": 1, "generated_at": int(time.time()), "entries": [{"jti": "gone"}]}, list_key), content_type="application/jwt")
            envoy = envoys.from_example("edge", env=env, ca_file=cert)
            assert envoy.scheme == "https"
            assert envoy.listener_port == ports["listener:edge_tls"] and envoy.admin_port == ports["admin"]
            wait_until(lambda: envoy.stat("wasmcustom.tokengate.revocation.fetch_ok") >= 1, 15, what="first list fetch")
            assert source.requests[0]["path"] == "/v1/revocations"
            assert source.requests[0]["headers"]["host"] == "revocations.internal"

            reader = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="r-1")
            auth = {"authorization": f"Bearer {reader}", "x-auth-subject": "forged"}
            # the workers see a fetched list within poll_interval_s + 1 s: 503 until then
            wait_until(lambda: envoy.get("/orders/7", headers=auth).status_code != 503, 7, 0.2, "list at the workers")
            r = envoy.get("/orders/77", headers=auth)
            assert r.status_code == 200, r.text
            seen = r.json()["headers"]
            assert seen["x-auth-subject"] == "alice" and seen["x-auth-scopes"] == "orders:read"
            assert "authorization" not in seen
            assert envoy.post("/orders", headers=auth).status_code == 403
            assert envoy.get("/internal/x", headers=auth).status_code == 403
            assert envoy.get("/admin", headers=auth).status_code == 403
            assert envoy.get("/healthz").status_code == 200
            r = envoy.get("/orders/8")
            assert r.status_code == 401 and r.json()["reason"] == "missing", r.text
            revoked = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="gone")
            r = envoy.get("/orders/9", headers={"authorization": f"Bearer {revoked}"})
            assert r.status_code == 401 and r.json()["reason"] == "revoked", r.text
            forged = mint(list_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="f-1")
            r = envoy.get("/orders/10", headers={"authorization": f"Bearer {forged}"})
            assert r.status_code == 401 and r.json()["reason"] == "bad_signature", r.text

            samples = envoy.prometheus_samples()
            assert samples["tokengate_allowed{}"] >= 1
            assert samples["tokengate_revocation_version{}"] == 1
            assert _records(envoy, "GET", "/orders/77", 1) == [{"decision": "allow", "sub": "alice", "jti": "r-1", "kid": "demo"}]
            assert _records(envoy, "POST", "/orders", 1) == [{"decision": "deny", "reason": "insufficient_scope", "sub": "alice", "jti": "r-1", "kid": "demo"}]
            assert _records(envoy, "GET", "/orders/8", 1) == [{"decision": "deny", "reason": "missing"}]
            assert _records(envoy, "GET", "/orders/9", 1) == [{"decision": "deny", "reason": "revoked", "sub": "alice", "jti": "gone", "kid": "demo"}]
            assert _records(envoy, "GET", "/healthz", 1) == [{"decision": "anonymous"}]
            assert reader not in envoy.access_log_text() and reader not in envoy.log_text()
            entries = _entries(envoy, "edge")
            assert {e["protocol"] for e in entries} <= {"HTTP/1.1", "HTTP/2"} and {e["client"] for e in entries} == {"127.0.0.1"}, entries
            assert all(isinstance(e["duration_ms"], int) and isinstance(e["start_time"], str) for e in entries), entries
            allowed = [e for e in entries if e["response_code"] == 200 and e["path"].startswith("/orders/")]
            assert allowed and all(e["upstream"] == f"127.0.0.1:{ports['cluster:upstream']}" for e in allowed), allowed
            assert all(e["upstream"] is None for e in entries if e["response_code"] in (401, 403)), entries
        finally:
            envoys.stop_all()  # before the fixed ports' lock is released
            source.stop()
            echo.stop()


# A subject and a token id holding what a text log line would take for the
# end of a field, a new field or a new record (all printable: a signed claim
# with a control or edge white space is refused, test_hardening.py).
FORGING_SUB = 'alice" response_code=200 tokengate={"decision":"allow","sub":"root"} \\'
FORGING_JTI = 'j-1","kid":"other'


def test_minimal_logs_one_json_object_per_request_whatever_the_client_sends(envoys, wasm_path: Path, tmp_path: Path, demo_key: str, list_key: str) -> None:
    """envoy/minimal.yaml as checked in, sent paths, methods and signed claims
    chosen to forge access log fields or lines, over HTTP/1.1 and HTTP/2: the
    log holds exactly one line per request, each one JSON object with the
    example's five members and nothing else, the values as Envoy passed them
    on (``"``, ``{``, ``}``, `` ` ``, ``|`` percent-encoded in the path, ``\\``
    turned into ``/``, the query left out) and tokengate's record a JSON object
    of the documented members. What Envoy refuses before any filter (a
    method or target its codec rejects) is logged too, once, with nulls."""
    env = _env("minimal", tmp_path, demo_key, list_key)
    ports = example_ports("minimal")
    signed = mint(demo_key, sub=FORGING_SUB, jti=FORGING_JTI)
    missing = {"decision": "deny", "reason": "missing"}
    # (protocol, method, target, headers, the line expected: method, path, response code, tokengate's record)
    sent: list[tuple[str, str, str, list[tuple[str, str]], tuple[str | None, str | None, int, dict[str, Any] | None]]] = [
        ("HTTP/1.1", "GET", '/t1/x"y\\z?access_token=secret-q', [], ("GET", "/t1/x%22y/z", 401, missing)),
        ("HTTP/1.1", "GET", "/t2/a%22,%22response_code%22:200,%22tokengate%22:null,%22x%22:%22", [], ("GET", "/t2/a%22,%22response_code%22:200,%22tokengate%22:null,%22x%22:%22", 401, missing)),
        ("HTTP/1.1", "GET", "/t3/a%0A%7B%22method%22:%22GET%22%7D%0D%0A", [], ("GET", "/t3/a%0A%7B%22method%22:%22GET%22%7D%0D%0A", 401, missing)),
        ("HTTP/1.1", "GET", '/t4/{"a":1}/`|', [], ("GET", "/t4/%7B%22a%22:1%7D/%60%7C", 401, missing)),
        ("HTTP/1.1", "GET", "/t5/%E2%80%A8%C2%85", [], ("GET", "/t5/%E2%80%A8%C2%85", 401, missing)),
        ("HTTP/1.1", "GET", "/t6", [("authorization", f"Bearer {signed}")], ("GET", "/t6", 200, {"decision": "allow", "sub": FORGING_SUB, "jti": FORGING_JTI, "kid": "demo"})),
        ("HTTP/1.1", "GET", "/healthz/t7", [("authorization", f"Bearer {signed}")], ("GET", "/healthz/t7", 200, {"decision": "anonymous"})),
        ("HTTP/1.1", 'GET"', "/t8", [], (None, None, 400, None)),  # Envoy's codec: not a method token
        ("HTTP/1.1", "FORGE|`~", "/t9", [], (None, None, 400, None)),  # nor a method it knows
        ("HTTP/1.1", "GET", "/t10/" + "\u2028".encode().decode("latin-1"), [], (None, None, 400, None)),  # raw UTF-8 bytes in the target
        ("HTTP/2", "GET", '/t11/x"y\\z', [], ("GET", "/t11/x%22y/z", 401, missing)),
        ("HTTP/2", "GET", "/t12/\u2028\u0085{}", [], ("GET", "/t12/%E2%80%A8%C2%85%7B%7D", 401, missing)),
        ("HTTP/2", "FORGE|`~'$%&*", "/t13", [], ("FORGE|`~'$%&*", "/t13", 401, missing)),  # HTTP/2 passes any token
        ("HTTP/2", "GET", "/t14", [("authorization", f"Bearer {signed}")], ("GET", "/t14", 200, {"decision": "allow", "sub": FORGING_SUB, "jti": FORGING_JTI, "kid": "demo"})),
        ("HTTP/2", 'G{"x":1}', "/t15", [], (None, None, 0, None)),  # Envoy closes the connection (after its 1 s delayed close)
    ]
    with fixed_ports(ports.values()):
        echo = EchoServer(port=ports["cluster:upstream"])
        try:
            envoy = envoys.from_example("minimal", env=env)
            port = int(envoy.listener_port or 0)
            for protocol, method, target, headers, _ in sent:
                if protocol == "HTTP/1.1":
                    reply = http1_exchange(port, http1_head(method, target, headers, host="api.test"))
                else:
                    reply = h2_request(port, h2_headers(method, target, "api.test", *headers))
                assert reply.status is not None or protocol == "HTTP/2", f"{protocol} {method} {target!r}: {reply.describe()}"
            wait_until(lambda: len(envoy.access_log_lines()) >= len(sent), 5, 0.05, f"{len(sent)} access log lines")
            time.sleep(0.3)  # nothing more comes
            text = envoy.access_log_text()
            lines = envoy.access_log_lines()
            assert len(lines) == len(sent) == text.count("\n"), f"want one line per request ({len(sent)}):\n{text}"
            for line in lines:
                assert not set(line) & {"\r", "\u0085", "\u2028", "\u2029"}, f"a line break some readers see: {line!r}"
            entries = _entries(envoy, "minimal")
            got = sorted(json.dumps([e["method"], e["path"], e["response_code"], access_record(e)]) for e in entries)
            want = sorted(json.dumps(list(expect)) for *_, expect in sent)
            assert got == want, "\n".join(["got:", *got, "want:", *want])
            assert {e["protocol"] for e in entries} == {"HTTP/1.1", "HTTP/2"}, entries
            assert "secret-q" not in text and signed not in text
            # the upstream got the claims of the allowed requests as one value each
            forwarded = [r["headers"].get("x-auth-subject") for r in echo.requests]
            assert forwarded == [None, None, None], forwarded  # minimal.yaml forwards no claim; /t6, /healthz/t7, /t14 reached it
        finally:
            envoys.stop_all()  # before the fixed ports' lock is released
            echo.stop()
