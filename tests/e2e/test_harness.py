"""Tests of the harness itself: real Envoy, real servers, no tokengate.wasm needed."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests

import harness
from harness import EnvoyError, access_entry, access_record, bootstrap, free_port, validate
from servers import EchoServer, RevocationSource

HERE = Path(__file__).resolve().parent


def plain_config(upstream_port: int, **kw: object) -> dict:
    """A bootstrap with no wasm filter: listener → router → upstream."""
    return bootstrap(listener_port=free_port(), admin_port=free_port(), upstream_port=upstream_port, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ Envoy basics


def test_request_reaches_echo_with_headers(envoys, echo_server: EchoServer) -> None:
    envoy = envoys.start(plain_config(echo_server.port))
    r = envoy.get("/hello?x=1", headers={"X-Test": "abc", "Authorization": "Bearer t0k"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["method"] == "GET"
    assert seen["path"] == "/hello?x=1"
    assert seen["headers"]["x-test"] == "abc"
    assert seen["headers"]["authorization"] == "Bearer t0k"
    assert "x-forwarded-proto" in seen["headers"]
    assert echo_server.count == 1
    assert echo_server.last == seen


def test_repeated_headers_and_verbatim_paths(envoys, echo_server: EchoServer) -> None:
    envoy = envoys.start(plain_config(echo_server.port))
    r = envoy.request("GET", "/a", headers=[("x-rep", "one"), ("x-rep", "two")])
    assert r.status == 200
    assert r.json()["headers"]["x-rep"] == ["one", "two"]
    # Envoy's normalize_path + merge_slashes run before any filter.
    assert envoy.request("GET", "/public//..//admin").json()["path"] == "/public/admin"
    assert envoy.request("GET", "/a/./b/../c").json()["path"] == "/a/c"
    # path_with_escaped_slashes_action: REJECT_REQUEST
    assert envoy.request("GET", "/a%2Fb").status == 400
    # POST bodies are echoed
    r = envoy.request("POST", "/form", headers={"content-type": "application/x-www-form-urlencoded"}, body="a=1&b=2")
    assert r.json()["body"] == "a=1&b=2"
    assert r.json()["method"] == "POST"


def test_raw_bytes(envoys, echo_server: EchoServer) -> None:
    envoy = envoys.start(plain_config(echo_server.port))
    out = envoy.raw(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert b'"path": "/raw"' in out


def test_stats_prometheus_and_logs(envoys, echo_server: EchoServer) -> None:
    envoy = envoys.start(plain_config(echo_server.port), log_level="debug")
    for _ in range(3):
        assert envoy.get("/s").status_code == 200
    stats = envoy.stats()
    assert stats["http.ingress.downstream_rq_2xx"] >= 3
    assert envoy.stat("cluster.upstream.upstream_rq_total") >= 3
    assert envoy.stat("no.such.stat", default=-1) == -1
    prom = envoy.prometheus()
    assert "envoy_http_downstream_rq_xx" in prom
    samples = envoy.prometheus_samples()
    assert any(k.startswith("envoy_cluster_upstream_rq_total") for k in samples)
    envoy.wait_for_log("starting main dispatch loop")  # the log file is written every 100 ms
    # One JSON object per request, tokengate's filter-state record under "tokengate"; no wasm here, so null.
    entry = harness.wait_until(lambda: [e for e in envoy.access_log_entries() if e["path"] == "/s"], what="access log")[0]
    assert entry == {"method": "GET", "path": "/s", "response_code": 200, "tokengate": None}, entry
    assert access_record(entry) is None


def test_access_record_parses_the_json_object() -> None:
    line = '{"method":"GET","path":"/a","response_code":200,"tokengate":"{\\"decision\\":\\"allow\\",\\"sub\\":\\"a b\\",\\"jti\\":\\"t1\\",\\"kid\\":\\"k1\\"}"}'
    assert access_entry(line)["path"] == "/a"
    assert access_record(line) == {"decision": "allow", "sub": "a b", "jti": "t1", "kid": "k1"}
    # with other fields (as in envoy/edge.yaml), and null when the filter decided nothing
    assert access_record('{"client":"127.0.0.1","tokengate":"{\\"decision\\":\\"deny\\",\\"reason\\":\\"missing\\"}"}') == {"decision": "deny", "reason": "missing"}
    assert access_record('{"path":"/a","tokengate":null}') is None
    for broken in (
        '"GET /a" 200 tokengate={"decision":"allow"}',  # the old text line
        '{"path":"/a"}',  # no tokengate key
        '{"tokengate":"{\\"decision\\":"}',  # a record cut short
        '{"tokengate":"[\\"allow\\"]"}',  # not an object
        '{"tokengate":{"decision":"allow"}}',  # not a string
        '{"tokengate":null} {"tokengate":"{}"}',  # two objects on one line
        '["tokengate"]',
    ):
        with pytest.raises(ValueError):
            access_record(broken)


def test_access_log_drops_query(envoys, echo_server: EchoServer) -> None:
    envoy = envoys.start(plain_config(echo_server.port))
    assert envoy.get("/q?access_token=secret-value").status_code == 200
    harness.wait_until(lambda: any(e["path"] == "/q" for e in envoy.access_log_entries()), what="access log")
    assert "secret-value" not in envoy.access_log_text()


def test_tls_listener(envoys, echo_server: EchoServer, tmp_path: Path) -> None:
    cert, key = harness.make_self_signed_cert(tmp_path / "tls")
    envoy = envoys.start(plain_config(echo_server.port, tls=(cert, key)), ca_file=cert)
    assert envoy.scheme == "https"
    assert envoy.get("/tls").json()["headers"]["x-forwarded-proto"] == "https"
    assert envoy.request("GET", "/tls2").status == 200


def test_two_envoys_side_by_side_and_stop(envoys, echo_server: EchoServer) -> None:
    a = envoys.start(plain_config(echo_server.port), concurrency=1)
    b = envoys.start(plain_config(echo_server.port), concurrency=1)
    assert a.base_id != b.base_id
    assert a.get("/a").status_code == 200 and b.get("/b").status_code == 200
    pid = a.pid
    assert a.stop() is not None
    assert not a.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
    with socket.socket() as s:  # its listener port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", a.listener_port))
    assert a.stop() is not None  # idempotent
    assert b.get("/b").status_code == 200


def test_env_reaches_envoy_but_tokengate_vars_do_not_leak(envoys, echo_server: EchoServer, monkeypatch) -> None:
    monkeypatch.setenv("TOKENGATE_KEY_LEAK", "x")
    envoy = envoys.start(plain_config(echo_server.port), env={"TOKENGATE_KEY_DEMO": "given"})
    environ = Path(f"/proc/{envoy.pid}/environ").read_bytes().split(b"\0")
    assert b"TOKENGATE_KEY_DEMO=given" in environ
    assert not any(e.startswith(b"TOKENGATE_KEY_LEAK=") for e in environ)


def test_start_failure_raises_with_log(envoys, echo_server: EchoServer) -> None:
    config = plain_config(echo_server.port)
    config["static_resources"]["clusters"][0]["no_such_field"] = 1
    t0 = time.monotonic()
    with pytest.raises(EnvoyError) as err:
        envoys.start(config)
    assert time.monotonic() - t0 < 20
    assert "exited with status" in str(err.value)
    assert "no_such_field" in str(err.value)
    assert not envoys.started[-1].alive


# --------------------------------------------------------------------- examples


@pytest.mark.parametrize("name", harness.example_names())
def test_examples_validate_without_wasm(name: str, tmp_path: Path, envoy_bin: Path) -> None:
    """Each checked-in example is a valid bootstrap once its wasm parts are
    removed (no build needed), and its tokengate configurations are JSON
    objects of the expected roots."""
    config = harness.load_yaml(harness.example_path(name).read_text())
    roots = harness.wasm_configurations(config)
    expected_roots = ["tokengate"] if name == "minimal" else ["tokengate-revocations", "tokengate"]
    assert [r for r, _ in roots] == expected_roots
    for root, conf in roots:
        assert isinstance(conf, dict), root
    cert, key = harness.make_self_signed_cert(tmp_path)
    env = {"TOKENGATE_TLS_CERT": cert.read_text(), "TOKENGATE_TLS_KEY": key.read_text()}
    ok, out = validate(harness.strip_wasm(config), env)
    assert ok, harness.tail(out)


def test_fixed_ports_waits_a_bounded_time_for_a_taken_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=str(port)):
            with harness.fixed_ports([port], timeout=0.5):
                pass
        assert time.monotonic() - t0 < 5
    with harness.fixed_ports([port], timeout=5):  # free again (and the lock was released)
        pass


def test_validate_rejects_broken_config(envoy_bin: Path) -> None:
    good = plain_config(free_port())
    ok, out = validate(good)
    assert ok, out
    bad = json.loads(json.dumps(good))
    bad["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = "not-a-port"
    ok, out = validate(bad)
    assert not ok
    ok, out = validate("static_resources: {clusters: [{name: c, type: NO_SUCH_TYPE}]}\n")
    assert not ok and "NO_SUCH_TYPE" in out


# ---------------------------------------------------------- revocation source


def test_revocation_source_etag_status_delay_drop(revocation_source: RevocationSource) -> None:
    src = revocation_source
    url = src.url + "/v1/revocations"
    src.set_document({"version": 3, "entries": [{"jti": "a"}]})
    r = requests.get(url, timeout=5)
    assert r.status_code == 200 and r.json()["version"] == 3
    etag = r.headers["etag"]
    assert etag == RevocationSource.etag_for(r.content)
    r = requests.get(url, headers={"If-None-Match": etag}, timeout=5)
    assert r.status_code == 304 and r.content == b""
    assert requests.get(url, headers={"If-None-Match": '"other"'}, timeout=5).status_code == 200
    assert src.requests[1]["headers"]["if-none-match"] == etag
    assert [q["answered"] for q in src.requests] == [200, 304, 200]

    src.set(etag='"v9"')
    assert requests.get(url, timeout=5).headers["etag"] == '"v9"'
    src.set(etag=None)
    assert "etag" not in requests.get(url, timeout=5).headers

    src.set(status=503)
    assert requests.get(url, timeout=5).status_code == 503
    src.set(status=200, delay_s=0.6)
    t0 = time.monotonic()
    assert requests.get(url, timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.6
    src.set(delay_s=0, drop=True)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    assert src.requests[-1]["answered"] == "dropped"


def test_revocation_source_through_envoy(envoys, revocation_source: RevocationSource) -> None:
    """Envoy (as the tokengate service will) fetches through a cluster and gets 304s."""
    envoy = envoys.start(plain_config(revocation_source.port))
    r = envoy.get("/v1/revocations", headers={"host": "revocations.internal"})
    assert r.status_code == 200
    r2 = envoy.get("/v1/revocations", headers={"If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304
    assert revocation_source.requests[0]["headers"]["host"] == "revocations.internal"
    revocation_source.set(drop=True)
    assert envoy.get("/v1/revocations").status_code == 503


def test_revocation_source_other_process(tmp_path: Path) -> None:
    """The command-line server, steered through its file and its control endpoint."""
    listfile = tmp_path / "revocations.json"
    listfile.write_text('{"version": 1, "entries": []}')
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "servers.py"), "revocations", "--port", "0", "--file", str(listfile)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("revocations listening on 127.0.0.1:")
        base = f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"
        r = requests.get(base + "/v1/revocations", timeout=5)
        assert r.json() == {"version": 1, "entries": []}
        listfile.write_text('{"version": 2, "entries": [{"jti": "x"}]}')
        r2 = requests.get(base + "/v1/revocations", headers={"If-None-Match": r.headers["etag"]}, timeout=5)
        assert r2.status_code == 200 and r2.json()["version"] == 2
        ctl = requests.post(base + "/_control", json={"status": 500, "clear_requests": True}, timeout=5)
        assert ctl.status_code == 200 and ctl.json()["status"] == 500
        assert requests.get(base + "/v1/revocations", timeout=5).status_code == 500
        body = base64.b64encode(b"signed.list.jws").decode()
        requests.post(base + "/_control", json={"status": 200, "file": None, "body_b64": body, "etag": '"e1"'}, timeout=5)
        r3 = requests.get(base + "/v1/revocations", timeout=5)
        assert r3.content == b"signed.list.jws" and r3.headers["etag"] == '"e1"'
        state = requests.get(base + "/_control", timeout=5).json()
        assert [q["answered"] for q in state["requests"]] == [500, 200]
        assert requests.post(base + "/_control", json={"nope": 1}, timeout=5).status_code == 400
    finally:
        proc.terminate()
        proc.wait(10)


def test_echo_server_command_line() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "servers.py"), "echo", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"echo listening on 127.0.0.1:{port}"
        assert requests.get(f"http://127.0.0.1:{port}/x", timeout=5).json()["path"] == "/x"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ----------------------------------------------------------- tokens and lists


def test_mint_and_sign_list(demo_key: str, list_key: str) -> None:
    key = base64.b64decode(demo_key)
    token = harness.mint(demo_key, sub="alice", scope="orders:read", aud="orders-api")
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "demo" and header["alg"] == "HS256"
    claims = jwt.decode(token, key, algorithms=["HS256"], audience="orders-api")
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert "jti" not in jwt.decode(harness.mint(demo_key, jti=None), key, algorithms=["HS256"])
    signed = harness.sign_list({"version": 1, "entries": []}, list_key)
    assert jwt.get_unverified_header(signed)["typ"] == "tokengate-revocations"
    assert jwt.decode(signed, base64.b64decode(list_key), algorithms=["HS256"]) == {"version": 1, "entries": []}
