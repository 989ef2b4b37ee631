"""What a failing VM does, in a real Envoy (docs/responses.md, "Fail
closed inside").

A panic is never expected (nothing on the request path can panic on input),
so this needs a module that can: ``target/panic-probe/…/tokengate.wasm``,
built by ``scripts/test`` with ``--cfg tokengate_profile="panic_probe"``,
is the module as shipped plus one path, ``/__tokengate_panic_probe``, that
panics. With ``failure_policy: FAIL_RELOAD`` (the examples' setting):

* the request whose VM panicked is refused, and never reaches the upstream;
* Envoy's log holds tokengate's critical line with the panic's location;
* the next requests get a fresh VM, which reads the published revocation list
  again: a revoked token stays refused, a valid one passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

import harness
from harness import Envoy, bootstrap, cluster, free_port, mint, new_key, revocation_service, tokengate_filter, wait_until
from servers import EchoServer, RevocationSource

PROBE_WASM = harness.REPO / "target" / "panic-probe" / "wasm32-wasip1" / "release" / "tokengate.wasm"
PROBE_PATH = "/__tokengate_panic_probe"


@pytest.fixture(scope="module")
def probe_wasm() -> Path:
    if not PROBE_WASM.exists():
        pytest.fail(
            f"the panic-probe module is missing at {PROBE_WASM}: scripts/test builds it "
            "(RUSTFLAGS='--cfg tokengate_profile=\"panic_probe\"' CARGO_TARGET_DIR=target/panic-probe "
            "cargo build --release --target wasm32-wasip1)",
            pytrace=False,
        )
    return PROBE_WASM


class Failing:
    """Envoy (one worker) with the probe module under FAIL_RELOAD, an echo
    upstream, and the revocation service publishing a list that revokes
    ``revoked-1``."""

    def __init__(self, wasm: Path, workdir: Path) -> None:
        self.key = new_key()
        self.echo = EchoServer()
        self.source = RevocationSource()
        self.source.set_document({"version": 1, "entries": [{"jti": "revoked-1"}]})
        filter_cfg = {
            "keys": [{"kid": "k1", "alg": "HS256", "secret": self.key}],
            "rules": [{"match": {"prefix": "/"}}],
            "revocation": {"max_stale_s": 60},
        }
        service_cfg = {
            "cluster": "revocation_source",
            "authority": "revocations.internal",
            "path": "/v1/revocations",
            "poll_interval_s": 1,
        }
        config = bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=self.echo.port,
            http_filters=[tokengate_filter(filter_cfg, wasm_path=wasm, failure_policy="FAIL_RELOAD")],
            clusters=[cluster("revocation_source", self.source.port)],
            bootstrap_extensions=[revocation_service(service_cfg, wasm_path=wasm)],
        )
        self.envoy = Envoy(config, workdir=workdir, concurrency=1)
        self.envoy.start()

    def call(self, path: str, token: str) -> int:
        return self.envoy.request("GET", path, headers={"authorization": f"Bearer {token}"}).status

    def stop(self) -> None:
        self.envoy.stop()
        self.echo.stop()
        self.source.stop()


@pytest.fixture(scope="module")
def failing(probe_wasm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failing]:
    f = Failing(probe_wasm, tmp_path_factory.mktemp("failing"))
    try:
        yield f
    finally:
        f.stop()


def test_a_panic_refuses_its_request_logs_where_and_the_next_vm_enforces_the_list(failing: Failing) -> None:
    good = mint(failing.key, kid="k1", sub="alice")
    revoked = mint(failing.key, kid="k1", sub="mallory", jti="revoked-1")
    wait_until(lambda: failing.call("/orders/1", revoked) == 401, 10, 0.1, "the list in force")
    assert failing.call("/orders/1", good) == 200
    seen = failing.echo.count

    status = failing.call(PROBE_PATH, good)
    assert status >= 500, f"the request whose VM panicked got {status}"
    assert failing.echo.count == seen, "the failing request reached the upstream"
    assert all(r["path"] != PROBE_PATH for r in failing.echo.requests)

    log = wait_until(
        lambda: (lambda text: text if "tokengate: panic at src/filter/http.rs" in text else None)(failing.envoy.log_text()),
        10,
        0.1,
        "tokengate's panic line in Envoy's log",
    )
    line = next(l for l in log.splitlines() if "tokengate: panic at" in l)
    assert "critical" in line, line

    # A fresh VM: it reads the published list again before deciding.
    wait_until(lambda: failing.call("/orders/2", good) == 200, 10, 0.1, "a fresh VM allowing a valid token")
    assert failing.call("/orders/3", revoked) == 401
