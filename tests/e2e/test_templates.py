"""The shipped Envoy configurations (envoy/*.yaml) run tokengate.wasm as documented."""

from __future__ import annotations

from pathlib import Path

import harness
from harness import free_port, mint, render_template, sign_list, validate, wait_until
from servers import EchoServer, RevocationSource

ISS = "https://auth.example.com"
AUD = "orders-api"


def test_templates_validate_with_module(wasm_path: Path, tmp_path: Path, demo_key: str, list_key: str) -> None:
    cert, key = harness.make_self_signed_cert(tmp_path)
    for name in ("minimal", "edge"):
        values = {"WASM_PATH": wasm_path, "TLS_CERT": cert, "TLS_KEY": key}
        values.update({p: free_port() for p in ("LISTENER_PORT", "UPSTREAM_PORT", "REVOCATION_PORT", "ADMIN_PORT")})
        text = render_template(name, values)
        ok, out = validate(text, env={"TOKENGATE_KEY_DEMO": demo_key, "TOKENGATE_LIST_KEY": list_key})
        assert ok, f"{name}: {harness.tail(out)}"
        # the filter refuses to start without its secret, and names the variable
        ok, out = validate(text, env={"TOKENGATE_LIST_KEY": list_key})
        assert not ok, name
        assert "TOKENGATE_KEY_DEMO" in out, name
        assert demo_key not in out


def test_minimal_template(envoys, wasm_path: Path, echo_server: EchoServer, demo_key: str) -> None:
    envoy = envoys.from_template("minimal", UPSTREAM_PORT=echo_server.port, env={"TOKENGATE_KEY_DEMO": demo_key})
    assert envoy.get("/healthz").status_code == 200
    r = envoy.get("/things")
    assert r.status_code == 401
    assert echo_server.count == 1
    token = mint(demo_key, sub="alice")
    r = envoy.get("/things", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert "authorization" not in r.json()["headers"]  # forward_token defaults to false
    assert echo_server.count == 2


def test_edge_template(
    envoys, wasm_path: Path, echo_server: EchoServer, revocation_source: RevocationSource, demo_key: str, list_key: str
) -> None:
    revocation_source.set(body=sign_list({"version": 1, "entries": [{"jti": "gone"}]}, list_key), content_type="application/jwt")
    envoy = envoys.from_template(
        "edge",
        UPSTREAM_PORT=echo_server.port,
        REVOCATION_PORT=revocation_source.port,
        env={"TOKENGATE_KEY_DEMO": demo_key, "TOKENGATE_LIST_KEY": list_key},
    )
    assert envoy.scheme == "https"
    wait_until(lambda: envoy.stat("wasmcustom.tokengate.revocation.fetch_ok") >= 1, 15, what="first list fetch")
    assert revocation_source.requests[0]["path"] == "/v1/revocations"
    assert revocation_source.requests[0]["headers"]["host"] == "revocations.internal"

    reader = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="r-1")
    auth = {"authorization": f"Bearer {reader}", "x-auth-subject": "forged"}
    # The workers see a fetched list within poll_interval_s + 1 s (SPEC §5): 503 until then.
    r = wait_until(lambda: (lambda r: r if r.status_code != 503 else None)(envoy.get("/orders/7", headers=auth)), 7, 0.2, "list at the workers")
    assert r.status_code == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-auth-subject"] == "alice" and seen["x-auth-scopes"] == "orders:read"
    assert envoy.post("/orders", headers=auth).status_code == 403
    assert envoy.get("/internal/x", headers=auth).status_code == 403
    assert envoy.get("/admin", headers=auth).status_code == 403
    assert envoy.get("/healthz").status_code == 200
    assert envoy.get("/orders/7").status_code == 401
    revoked = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="gone")
    assert envoy.get("/orders/7", headers={"authorization": f"Bearer {revoked}"}).status_code == 401

    samples = envoy.prometheus_samples()
    assert samples["tokengate_allowed{}"] >= 1
    assert samples["tokengate_revocation_version{}"] == 1
    line = wait_until(lambda: [l for l in envoy.access_log_lines() if '"GET /orders/7 ' in l and "decision=allow" in l], what="access log")[0]
    assert "reason=- sub=alice jti=r-1 kid=demo" in line
    assert reader not in envoy.access_log_text() and reader not in envoy.log_text()
