"""The Prometheus alerting rules (docs/alerts.md, "Alerts"):
``examples/prometheus/tokengate-alerts.yml``.

* ``promtool check rules`` accepts them and ``promtool test rules`` passes
  their unit tests (``tokengate-alerts.test.yml``: each alert fires on its
  failure and stays quiet on healthy neighbours).
* In a real run, a Prometheus started here (127.0.0.1, a temp config and
  data dir, 1 s scrape and evaluation intervals) scrapes two Envoys'
  ``/stats/prometheus`` while their revocation list source is down, and the
  stale-list alert (for the one that had loaded a list) and the not-loaded
  alert (for the one whose source never answered) go pending, then firing;
  every metric the rules name is one Envoy exports.

promtool and prometheus come from Debian's ``prometheus`` package, which
``scripts/setup`` installs: a missing one is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import free_port, mint, revocation_service, sign_list, tokengate_filter
from servers import RevocationSource

RULES_DIR = harness.REPO / "examples" / "prometheus"
RULES = RULES_DIR / "tokengate-alerts.yml"
RULE_TESTS = RULES_DIR / "tokengate-alerts.test.yml"

# The filter's max_stale_s default, which TokengateRevocationListStale's
# threshold is (docs/alerts.md, "The revocation list").
STALE_THRESHOLD_S = 300


def tool(name: str) -> str:
    """The path of promtool or prometheus; a missing one FAILS the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run scripts/setup (it installs Debian's prometheus package)", pytrace=False)
    return path


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, **kw)


def rules() -> dict[str, Any]:
    return harness.load_yaml(RULES.read_text())


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in rules()["groups"] for rule in group["rules"]]


def metric_names() -> set[str]:
    """Every tokengate metric the rules' expressions name."""
    return {m for rule in all_rules() for m in re.findall(r"\btokengate_[a-z_]+\b", rule["expr"])}


def test_promtool_check_rules_accepts_the_rules():
    proc = run([tool("promtool"), "check", "rules", str(RULES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in proc.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    proc = run([tool("promtool"), "test", "rules", RULE_TESTS.name], cwd=RULES_DIR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_and_documented():
    tests = harness.load_yaml(RULE_TESTS.read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    page = (harness.REPO / "docs" / "alerts.md").read_text()
    for rule in all_rules():
        assert rule["alert"] in tested, f"{rule['alert']} never fires in {RULE_TESTS.name}"
        assert f"### {rule['alert']}" in page, f"docs/alerts.md has no section for {rule['alert']}"
        assert rule["labels"]["severity"] in {"critical", "warning"}
    assert re.search(rf"tokengate_revocation_age_s\) > {STALE_THRESHOLD_S}\b", RULES.read_text())


class Prometheus:
    """A Prometheus on 127.0.0.1 with its config and data under ``directory``; stopped by PID."""

    def __init__(self, directory: Path, rules_text: str, targets: list[str]) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rules.yml").write_text(rules_text)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "envoy", "metrics_path": "/stats/prometheus", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.log = open(directory / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={harness.HOST}:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            preexec_fn=harness._die_with_parent,  # never outlives the test process
        )
        self.log_path = directory / "prometheus.log"

    def api(self, path: str) -> Any:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{harness.HOST}:{self.port}{path}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{harness.HOST}:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def shortened(text: str) -> str:
    """The rules with every ``for:`` cut to 3 s, nothing else changed."""
    out, n = re.subn(r"(?m)^(\s+for:) \d+[smh]$", r"\1 3s", text)
    assert n >= 5, "the rules' for: durations were not found"
    return out


def gate_with_service(envoys: Any, upstream_port: int, source_port: int, list_key: str) -> tuple[harness.Envoy, dict[str, Any]]:
    """An Envoy with tokengate (orders-api, ``max_stale_s`` 300, deny) and the
    revocation service polling 127.0.0.1:source_port every second for a
    list signed with ``list_key``; returns it and the filter configuration."""
    gate_cfg = harness.orders_api()
    gate_cfg["revocation"] = {"max_stale_s": STALE_THRESHOLD_S, "on_unavailable": "deny"}
    service_cfg = {
        "cluster": "revocation_source",
        "authority": "revocations.internal",
        "path": "/v1/revocations",
        "poll_interval_s": 1,
        "timeout_ms": 500,
        "verify_key": {"alg": "HS256", "secret_env": "TOKENGATE_LIST_KEY"},
    }
    config = harness.bootstrap(
        listener_port=free_port(),
        admin_port=free_port(),
        upstream_port=upstream_port,
        http_filters=[tokengate_filter(gate_cfg)],
        clusters=[harness.cluster("revocation_source", source_port)],
        bootstrap_extensions=[revocation_service(service_cfg)],
    )
    return envoys.start(config, env={"TOKENGATE_LIST_KEY": list_key}), gate_cfg


def test_prometheus_scraping_envoy_raises_the_list_alerts_while_the_source_is_down(envoys, echo_server, wasm_path, list_key, tmp_path):
    """A real Prometheus scrapes two Envoys whose list source is down, and
    the alerts go pending, then firing: TokengateRevocationListStale for the
    one that loaded a list before the source went down,
    TokengateRevocationListNotLoaded for the one whose source never answered.

    The rules are the shipped ones with only their ``for:`` durations cut to
    3 s (the shipped ``for:`` are minutes); thresholds are untouched. The
    list's age must pass 300 s without a five-minute test: the source served
    a signed list generated 400 s ago (a signed list's age counts from its
    signed ``generated_at``, docs/revocation.md, "Age and staleness"), then
    went down, as a source that stopped re-signing and then failed would
    leave a node.
    """
    source = RevocationSource()
    try:
        old = int(time.time()) - (STALE_THRESHOLD_S + 100)
        source.set(body=sign_list({"version": 1, "generated_at": old, "entries": []}, list_key), content_type="application/jwt")
        stale, gate_cfg = gate_with_service(envoys, echo_server.port, source.port, list_key)
        harness.wait_until(lambda: stale.stat("wasmcustom.tokengate.revocation.version") == 1, timeout=10, what="list version 1")
    finally:
        source.stop()  # the source is down from here on
    # Nothing ever listens on this one's source port.
    never, _ = gate_with_service(envoys, echo_server.port, free_port(), list_key)

    assert stale.stat("wasmcustom.tokengate.revocation.age_s") > STALE_THRESHOLD_S
    assert never.stat("wasmcustom.tokengate.revocation.version") == 0
    # What the alerts are about: valid tokens get 503 revocation_unavailable.
    key = gate_cfg["keys"][0]
    token = mint(key["secret"], kid=key["kid"], sub="alice", iss="https://auth.example.com", aud="orders-api", scope="orders:read")
    for gate in (stale, never):
        r = gate.request("GET", "/orders/1", [("authorization", f"Bearer {token}")])
        assert r.status == 503 and r.json()["reason"] == "revocation_unavailable", r.text
    # The Envoy exports every metric the rules name.
    exported = set(re.findall(r"(?m)^# TYPE (tokengate_[a-z_]+) (?:counter|gauge)$", stale.prometheus()))
    assert metric_names() <= exported, metric_names() - exported

    stale_target, never_target = (f"{harness.HOST}:{g.admin_port}" for g in (stale, never))
    prom = Prometheus(tmp_path / "prometheus", shortened(RULES.read_text()), [stale_target, never_target])
    try:
        harness.wait_until(prom.ready, timeout=30, interval=0.2, what="prometheus ready")
        states: dict[str, list[str]] = {"TokengateRevocationListStale": [], "TokengateRevocationListNotLoaded": []}

        def both_firing() -> bool:
            for name, seen in states.items():
                found = prom.alerts(name)
                if found:
                    seen.append(found[0]["state"])
            return all(seen and seen[-1] == "firing" for seen in states.values())

        harness.wait_until(both_firing, timeout=30, interval=0.5, what="the stale-list and not-loaded alerts firing")
        for name, target in (("TokengateRevocationListStale", stale_target), ("TokengateRevocationListNotLoaded", never_target)):
            (alert,) = prom.alerts(name)  # one alert, for that Envoy only
            assert alert["labels"] == {"alertname": name, "instance": target, "job": "envoy", "severity": "critical"}
            # Pending first (for: 3 s), then firing; never anything else.
            assert set(states[name]) <= {"pending", "firing"}, states
        (alert,) = prom.alerts("TokengateRevocationListStale")
        assert float(alert["value"]) > STALE_THRESHOLD_S
        # Scraped under the names the rules use.
        for name in sorted(metric_names()):
            assert prom.api(f"/api/v1/query?query={name}")["result"], f"Prometheus has no {name}"
        assert prom.alerts("TokengateInternalRefusals") == []
    finally:
        prom.stop()
