"""The Envoy configurations checked in under envoy/ run exactly as they are,
the way their header comments and the README tell: from the repository root,
``envoy -c envoy/<name>.yaml``, with nothing but the documented environment
variables, on the file's own fixed ports on 127.0.0.1. No rendering, no copy.

Starting them needs their fixed ports: each test that starts one holds
``harness.fixed_ports`` (a machine-wide lock, then a bounded wait until the
ports are free) so that two runs never collide.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import REPO, access_record, example_env_vars, example_path, example_ports, fixed_ports, load_yaml, mint, sign_list, validate, wait_until
from servers import EchoServer, RevocationSource

ISS = "https://auth.example.com"
AUD = "orders-api"
WASM_RELATIVE = "target/wasm32-wasip1/release/tokengate.wasm"
EXAMPLES = harness.example_names()


def test_the_examples_are_minimal_and_edge() -> None:
    assert EXAMPLES == ["edge", "minimal"]


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
    # the revision's access log: the one filter-state key
    formats = [f["inline_string"] for f in _walk(config, "text_format_source")]
    assert formats and all("tokengate=%FILTER_STATE(wasm.tokengate:PLAIN)%" in f for f in formats), (name, formats)
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


def _records(envoy: harness.Envoy, marker: str, count: int) -> list[dict[str, Any] | None]:
    """The tokengate records of the access log lines holding ``marker``, once there are ``count`` of them."""
    lines = wait_until(lambda: (lambda ls: ls if len(ls) >= count else None)([l for l in envoy.access_log_lines() if marker in l]), 5, 0.1, f"{count} access log lines with {marker}")
    return [access_record(line) for line in lines]


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

            assert _records(envoy, "/healthz", 1) == [{"decision": "anonymous"}]
            records = _records(envoy, "GET /things", 3)
            assert records == [
                {"decision": "deny", "reason": "missing"},
                {"decision": "allow", "sub": "alice", "jti": "m-1", "kid": "demo"},
                {"decision": "deny", "reason": "bad_signature"},  # nothing unverified logged
            ], records
            assert token not in envoy.access_log_text() and token not in envoy.log_text()
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

            samples = envoy.prometheus_samples()
            assert samples["tokengate_allowed{}"] >= 1
            assert samples["tokengate_revocation_version{}"] == 1
            assert _records(envoy, '"GET /orders/77 ', 1) == [{"decision": "allow", "sub": "alice", "jti": "r-1", "kid": "demo"}]
            assert _records(envoy, '"POST /orders ', 1) == [{"decision": "deny", "reason": "insufficient_scope", "sub": "alice", "jti": "r-1", "kid": "demo"}]
            assert _records(envoy, '"GET /orders/8 ', 1) == [{"decision": "deny", "reason": "missing"}]
            assert _records(envoy, '"GET /orders/9 ', 1) == [{"decision": "deny", "reason": "revoked", "sub": "alice", "jti": "gone", "kid": "demo"}]
            assert _records(envoy, '"GET /healthz ', 1) == [{"decision": "anonymous"}]
            assert reader not in envoy.access_log_text() and reader not in envoy.log_text()
        finally:
            envoys.stop_all()  # before the fixed ports' lock is released
            source.stop()
            echo.stop()
