"""End-to-end harness: run a real Envoy around tokengate.wasm and talk to it.

Main pieces:

* ``free_port()``: a free TCP port on 127.0.0.1.
* ``Envoy``: one Envoy process (own temp dir, own ``--base-id``, ports on
  127.0.0.1), started from a config dict (``Envoy(config)``) or from one of
  the checked-in examples as is (``Envoy.from_example("minimal", env=...)``,
  run from the repository root on the file's own fixed ports); waits for
  admin ``/ready`` = LIVE; ``get``/``post`` (requests), ``request``/``raw``
  (verbatim paths and repeated headers), ``stats``, ``prometheus``,
  ``log_text``, ``access_log_text``, ``access_log_lines``,
  ``access_log_entries``, ``stop``.
* ``access_entry(line)``: one access log line, a JSON object;
  ``access_record(line)``: tokengate's JSON record in it (the filter-state
  key ``wasm.tokengate``).
* ``validate(config)``: ``envoy --mode validate``.
* The examples in ``envoy/``: ``example_path``, ``example_ports``,
  ``example_env_vars`` (what a file reads), ``documented_env_vars`` (what its
  header comment tells to export), ``fixed_ports`` (a bounded wait for the
  examples' fixed ports, one test process at a time).
* Config builders: ``plugin_config``, ``tokengate_filter`` (the HTTP filter),
  ``revocation_service`` (the bootstrap singleton), ``cluster``, ``bootstrap``.
* The orders-api filter configuration every suite shares: ``orders_api()``
  (a fresh copy of ``tests/data/orders-api.json``; a suite derives its
  variant by replacing members of the copy).
* Tokens and lists for tests: ``new_key``, ``mint``, ``sign_list``.

Everything listens on 127.0.0.1; every process is stopped by PID.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import http.client
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

REPO = Path(__file__).resolve().parents[2]
ENVOY_BIN = Path(os.environ.get("TOKENGATE_ENVOY_BIN", REPO / ".venv" / "bin" / "envoy"))
WASM_PATH = Path(os.environ.get("TOKENGATE_WASM", REPO / "target" / "wasm32-wasip1" / "release" / "tokengate.wasm"))
CLI_PATH = Path(os.environ.get("TOKENGATE_CLI", REPO / "target" / "release" / "tokengate"))
EXAMPLES = REPO / "envoy"
ORDERS_API = REPO / "tests" / "data" / "orders-api.json"
HOST = "127.0.0.1"

READY_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40

WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
WASM_SERVICE_TYPE = "type.googleapis.com/envoy.extensions.wasm.v3.WasmService"
STRING_VALUE_TYPE = "type.googleapis.com/google.protobuf.StringValue"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TLS_DOWNSTREAM_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
STDOUT_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"

# Access log of the configs built here, as the examples in envoy/ log it: one
# JSON object per line (Envoy escapes every value and prints null for a
# missing one), tokengate's one filter-state key under "tokengate" as a
# string holding its compact JSON record (null when the filter decided
# nothing). Read a line with access_entry(line), the record with
# access_record(line).
ACCESS_LOG_KEY = "tokengate"
ACCESS_LOG_JSON = {
    "method": "%REQ(:METHOD)%",
    "path": "%PATH(NQ:PATH)%",
    "response_code": "%RESPONSE_CODE%",
    ACCESS_LOG_KEY: "%FILTER_STATE(wasm.tokengate:PLAIN)%",
}


# "[2026-11-27 19:49:00.874][17282][info][main] ...": Envoy's own log line format.
_ENVOY_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\]\[\d+\]\[")


class EnvoyError(RuntimeError):
    """Envoy failed to start, died, or could not be reached."""


# ----------------------------------------------------------------------- basics


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Call ``predicate`` until it returns something truthy; return that, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def new_key(nbytes: int = 32) -> str:
    """A random base64 secret (32 bytes suits HS256)."""
    return base64.b64encode(secrets.token_bytes(nbytes)).decode()


def access_entry(line: str) -> dict[str, Any]:
    """One access log line: exactly one JSON object and nothing else (a
    ValueError otherwise, so a test never reads a broken or forged line as
    a good one)."""
    try:
        entry = json.loads(line)
    except ValueError as e:
        raise ValueError(f"the access log line is not one JSON value ({e}): {line!r}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"the access log line is not a JSON object: {line!r}")
    return entry


def access_record(line: str | Mapping[str, Any]) -> dict[str, Any] | None:
    """tokengate's record in one access log line (or its ``access_entry``):
    the JSON object in the string under ``tokengate`` (``{"decision":
    "allow", "sub": …}``), or None when Envoy printed null (the filter
    decided nothing, or did not run).

    A line without the key, or a value that is not a string holding one JSON
    object, is a ValueError: a test reading the record never mistakes a
    broken line for an empty record."""
    entry = access_entry(line) if isinstance(line, str) else line
    if ACCESS_LOG_KEY not in entry:
        raise ValueError(f"no {ACCESS_LOG_KEY!r} in the access log entry {entry!r}")
    value = entry[ACCESS_LOG_KEY]
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{ACCESS_LOG_KEY!r} is not a string: {entry!r}")
    try:
        record = json.loads(value)
    except ValueError as e:
        raise ValueError(f"{ACCESS_LOG_KEY!r} is not JSON ({e}): {entry!r}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{ACCESS_LOG_KEY!r} is not a JSON object: {entry!r}")
    return record


# --------------------------------------------------------------------- examples

# Every test process on this machine that starts an example takes this lock
# first: the examples listen on fixed ports, so two runs at once (from other
# worktrees too) would collide.
FIXED_PORTS_LOCK = Path(tempfile.gettempdir()) / "tokengate-e2e-fixed-ports.lock"


def example_path(name: str) -> Path:
    """``envoy/<name>.yaml``."""
    return EXAMPLES / f"{name}.yaml"


def example_names() -> list[str]:
    """The examples checked in under ``envoy/`` (``minimal``, ``edge``)."""
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def _socket_port(node: Mapping[str, Any]) -> int:
    return int(node["address"]["socket_address"]["port_value"])


def example_ports(name: str) -> dict[str, int]:
    """The fixed ports an example names: ``admin``, ``listener:<name>`` for
    each listener and ``cluster:<name>`` for each cluster endpoint."""
    config = load_yaml(example_path(name).read_text())
    ports = {"admin": _socket_port(config["admin"])}
    resources = config.get("static_resources", {})
    for listener in resources.get("listeners", []):
        ports[f"listener:{listener['name']}"] = _socket_port(listener)
    for c in resources.get("clusters", []):
        for group in c["load_assignment"]["endpoints"]:
            for lb in group["lb_endpoints"]:
                ports[f"cluster:{c['name']}"] = _socket_port(lb["endpoint"])
    return ports


def example_env_vars(config: Mapping[str, Any]) -> set[str]:
    """Every environment variable a bootstrap reads: the wasm VMs'
    ``host_env_keys`` and the ``environment_variable`` data sources."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "host_env_keys":
                    found.update(v)
                elif k == "environment_variable" and isinstance(v, str):
                    found.add(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return found


_EXPORT = re.compile(r"^#\s+export\s+([A-Z_][A-Z0-9_]*)=", re.MULTILINE)


def documented_env_vars(text: str) -> set[str]:
    """The variables the header comment of an example tells to ``export``."""
    header = text[: text.index("\nadmin:")] if "\nadmin:" in text else text
    return set(_EXPORT.findall(header))


def _port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (connections in TIME_WAIT do not
    count: Envoy and the test servers bind with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def fixed_ports(ports: Iterable[int], timeout: float = 120.0) -> Iterator[None]:
    """Hold the machine-wide lock of the examples' fixed ports and wait
    (bounded) until every one of ``ports`` is free on 127.0.0.1; raise
    TimeoutError naming the ports still taken."""
    wanted = sorted(set(ports))
    deadline = time.monotonic() + timeout
    with open(FIXED_PORTS_LOCK, "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"another test run held {FIXED_PORTS_LOCK} for {timeout}s") from None
                time.sleep(0.2)
        try:
            while True:
                taken = [p for p in wanted if not _port_is_free(p)]
                if not taken:
                    break
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the examples' fixed ports {taken} on {HOST} are still in use after {timeout}s (a demo running?)")
                time.sleep(0.2)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def make_self_signed_cert(directory: str | Path, name: str = "server") -> tuple[Path, Path]:
    """Write ``<name>.crt``/``<name>.key`` (RSA 2048, CN=localhost, SAN localhost and 127.0.0.1)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    cmd = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl failed: {proc.stderr.strip()}")
    return cert, key


# ------------------------------------------------------------- config builders


def orders_api() -> dict[str, Any]:
    """The orders-api filter configuration (``tests/data/orders-api.json``), a
    fresh copy each call: change members of it for a variant, never the file."""
    with open(ORDERS_API) as f:
        config: dict[str, Any] = json.load(f)
    return config


def secret_envs(config: Any) -> list[str]:
    """Every ``secret_env`` value found anywhere in a tokengate configuration."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "secret_env" and isinstance(v, str) and v not in found:
                    found.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return found


def plugin_config(
    config: Mapping[str, Any] | str,
    *,
    root_id: str = "tokengate",
    vm_id: str = "tokengate",
    name: str | None = None,
    wasm_path: str | Path | None = None,
    env_keys: Iterable[str] | None = None,
    env_values: Mapping[str, str] | None = None,
    failure_policy: str | None = "FAIL_CLOSED",
) -> dict[str, Any]:
    """A proxy-wasm ``PluginConfig`` for tokengate.

    ``config`` is the tokengate JSON as a dict (serialized here) or as raw text
    (for tests of broken JSON). ``env_keys`` default to every ``secret_env`` in
    it, passed through ``host_env_keys``; ``env_values`` become ``key_values``.
    """
    text = config if isinstance(config, str) else json.dumps(config)
    keys = list(env_keys) if env_keys is not None else secret_envs(config if not isinstance(config, str) else {})
    vm: dict[str, Any] = {
        "vm_id": vm_id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(wasm_path or WASM_PATH)}},
    }
    envs: dict[str, Any] = {}
    if keys:
        envs["host_env_keys"] = keys
    if env_values:
        envs["key_values"] = dict(env_values)
    if envs:
        vm["environment_variables"] = envs
    plugin: dict[str, Any] = {
        "name": name or root_id,
        "root_id": root_id,
        "vm_config": vm,
        "configuration": {"@type": STRING_VALUE_TYPE, "value": text},
    }
    if failure_policy:
        plugin["failure_policy"] = failure_policy
    if root_id == "tokengate":
        # The refresh endpoint pauses on headers to read the body; without
        # this, proxy-wasm turns that pause into "stop all" and the body
        # never reaches the filter.
        plugin["allow_on_headers_stop_iteration"] = True
    return plugin


def tokengate_filter(config: Mapping[str, Any] | str, **kw: Any) -> dict[str, Any]:
    """The ``envoy.filters.http.wasm`` HTTP filter entry running tokengate (kwargs: see ``plugin_config``)."""
    return {"name": "envoy.filters.http.wasm", "typed_config": {"@type": WASM_FILTER_TYPE, "config": plugin_config(config, **kw)}}


def revocation_service(config: Mapping[str, Any] | str, **kw: Any) -> dict[str, Any]:
    """The ``envoy.bootstrap.wasm`` singleton running root ``tokengate-revocations`` (a bootstrap extension)."""
    kw.setdefault("root_id", "tokengate-revocations")
    kw.setdefault("failure_policy", None)
    return {
        "name": "envoy.bootstrap.wasm",
        "typed_config": {"@type": WASM_SERVICE_TYPE, "singleton": True, "config": plugin_config(config, **kw)},
    }


def router_filter() -> dict[str, Any]:
    """The router, last HTTP filter."""
    return {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}


def cluster(name: str, port: int, *, connect_timeout: str = "1s") -> dict[str, Any]:
    """A STATIC cluster with one endpoint on 127.0.0.1:port."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": port}}}}]}],
        },
    }


def bootstrap(
    *,
    listener_port: int,
    admin_port: int,
    upstream_port: int | None = None,
    http_filters: Iterable[dict[str, Any]] = (),
    routes: list[dict[str, Any]] | None = None,
    clusters: Iterable[dict[str, Any]] = (),
    bootstrap_extensions: Iterable[dict[str, Any]] = (),
    tls: tuple[str | Path, str | Path] | None = None,
    client_ca: str | Path | None = None,
    access_log: bool = True,
    hcm: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete bootstrap: one listener (plain, or TLS with ``tls=(cert, key)``;
    ``client_ca`` makes it mutual TLS), the given HTTP filters then the router,
    admin on 127.0.0.1.

    Routes default to everything → cluster ``upstream`` (127.0.0.1:upstream_port)
    when ``upstream_port`` is given, else a ``direct_response`` 200. The HTTP
    connection manager has ``normalize_path``, ``merge_slashes`` and
    ``path_with_escaped_slashes_action: REJECT_REQUEST``; ``hcm`` overrides or
    adds fields. With ``access_log`` each request logs ``ACCESS_LOG_JSON`` to stdout.
    """
    all_clusters = list(clusters)
    if routes is None:
        if upstream_port is not None:
            routes = [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
        else:
            routes = [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "direct\n"}}}]
    if upstream_port is not None:
        all_clusters.insert(0, cluster("upstream", upstream_port))
    manager: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "route_config": {"name": "local", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [*http_filters, router_filter()],
    }
    if access_log:
        manager["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {"@type": STDOUT_LOG_TYPE, "log_format": {"json_format": ACCESS_LOG_JSON}},
            }
        ]
    manager.update(hcm or {})
    chain: dict[str, Any] = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
    if tls is not None:
        context: dict[str, Any] = {
            "common_tls_context": {
                "alpn_protocols": ["http/1.1"],
                "tls_certificates": [{"certificate_chain": {"filename": str(tls[0])}, "private_key": {"filename": str(tls[1])}}],
            }
        }
        if client_ca is not None:
            context["common_tls_context"]["validation_context"] = {"trusted_ca": {"filename": str(client_ca)}}
            context["require_client_certificate"] = True
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": TLS_DOWNSTREAM_TYPE, **context}}
    config: dict[str, Any] = {
        "admin": {"address": {"socket_address": {"address": HOST, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{"name": "main", "address": {"socket_address": {"address": HOST, "port_value": listener_port}}, "filter_chains": [chain]}],
            "clusters": all_clusters,
        },
    }
    extensions = list(bootstrap_extensions)
    if extensions:
        config["bootstrap_extensions"] = extensions
    return config


def load_yaml(text: str) -> dict[str, Any]:
    """Parse a YAML config into a dict."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("not a YAML mapping")
    return data


def strip_wasm(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a bootstrap without any wasm HTTP filter or wasm bootstrap extension."""
    out: dict[str, Any] = json.loads(json.dumps(config))
    out["bootstrap_extensions"] = [e for e in out.get("bootstrap_extensions", []) if e.get("name") != "envoy.bootstrap.wasm"]
    if not out["bootstrap_extensions"]:
        del out["bootstrap_extensions"]
    for listener in out.get("static_resources", {}).get("listeners", []):
        for chain in listener.get("filter_chains", []):
            for net in chain.get("filters", []):
                tc = net.get("typed_config", {})
                if "http_filters" in tc:
                    tc["http_filters"] = [f for f in tc["http_filters"] if f.get("name") != "envoy.filters.http.wasm"]
    return out


def wasm_configurations(config: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(root_id, tokengate JSON parsed) for every wasm plugin of a bootstrap: filters and services."""
    found: list[tuple[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "root_id" in node and "vm_config" in node:
                value = node.get("configuration", {}).get("value", "")
                found.append((node["root_id"], json.loads(value) if value else None))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return found


# ------------------------------------------------------------------------ Envoy

_base_ids = itertools.count(1)
_running: dict[int, "Envoy"] = {}


def _next_base_id() -> int:
    """A base id unique to this process and instance (hot-restart shared memory is keyed by it)."""
    return (os.getpid() % 100_000) * 100 + next(_base_ids) % 100


def _child_env(extra: Mapping[str, str] | None, inherit: bool = True) -> dict[str, str]:
    """The environment of a child Envoy: ours without any TOKENGATE_* variable
    (nothing of ours at all unless ``inherit``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if inherit and not k.startswith("TOKENGATE_")}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the test process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _to_config_file(config: Mapping[str, Any] | str | Path, directory: Path) -> Path:
    """Write a config (dict → JSON, str → YAML text, Path → copied as is) into ``directory``."""
    if isinstance(config, Path):
        return config
    if isinstance(config, str):
        path = directory / "envoy.yaml"
        path.write_text(config)
    else:
        path = directory / "envoy.json"
        path.write_text(json.dumps(config, indent=2))
    return path


@dataclass
class RawResponse:
    """An HTTP response read by ``Envoy.request``."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(repr=False, eq=False)
class Envoy:
    """One Envoy process around a config, on ports of 127.0.0.1.

    ``Envoy(config_dict, env={...})`` starts at once and waits until admin
    ``/ready`` answers LIVE (``READY_TIMEOUT_S``); if Envoy exits first,
    ``EnvoyError`` carries the last lines of its log. The listener and admin
    ports are read from a dict config; pass them for a YAML text config or a
    file. Envoy runs in ``cwd`` (default: the work dir); with
    ``inherit_env=False`` its environment is ``env`` and nothing else.
    """

    config: Mapping[str, Any] | str | Path
    env: Mapping[str, str] | None = None
    concurrency: int = 2
    log_level: str = "info"
    listener_port: int | None = None
    admin_port: int | None = None
    scheme: str | None = None
    ca_file: str | Path | None = None
    workdir: str | Path | None = None
    extra_args: tuple[str, ...] = ()
    start_now: bool = True
    cwd: str | Path | None = None
    inherit_env: bool = True

    def __post_init__(self) -> None:
        self._own_workdir = self.workdir is None
        self.workdir = Path(self.workdir or tempfile.mkdtemp(prefix="tokengate-envoy-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.base_id = _next_base_id()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "envoy.log"
        self.stdout_path = self.workdir / "stdout.log"
        if isinstance(self.config, Mapping):
            self._infer_from_dict(self.config)
        if self.scheme is None:
            self.scheme = "http"
        if self.listener_port is None or self.admin_port is None:
            raise ValueError("listener_port and admin_port are needed for a config that is not a dict")
        self.config_path = _to_config_file(self.config, self.workdir)
        if self.start_now:
            self.start()

    def _infer_from_dict(self, config: Mapping[str, Any]) -> None:
        if self.admin_port is None:
            self.admin_port = int(config["admin"]["address"]["socket_address"]["port_value"])
        listeners = config.get("static_resources", {}).get("listeners", [])
        if listeners and self.listener_port is None:
            self.listener_port = int(listeners[0]["address"]["socket_address"]["port_value"])
            if self.scheme is None and "transport_socket" in listeners[0]["filter_chains"][0]:
                self.scheme = "https"

    # ---- construction from a checked-in example

    @classmethod
    def from_example(
        cls,
        name: str,
        *,
        env: Mapping[str, str],
        workdir: str | Path | None = None,
        **kw: Any,
    ) -> "Envoy":
        """Run ``envoy/<name>.yaml`` exactly as checked in, the way its header
        comment tells: from the repository root, ``-c envoy/<name>.yaml``, with
        ``env`` as its whole environment. The listener (the first one) and
        admin ports are the file's own; hold ``fixed_ports`` around it. Other
        keyword arguments go to ``Envoy`` (``ca_file`` for a TLS listener)."""
        config = load_yaml(example_path(name).read_text())
        listener = config["static_resources"]["listeners"][0]
        kw.setdefault("listener_port", _socket_port(listener))
        kw.setdefault("admin_port", _socket_port(config["admin"]))
        kw.setdefault("scheme", "https" if "transport_socket" in listener["filter_chains"][0] else "http")
        kw.setdefault("cwd", REPO)
        kw.setdefault("inherit_env", False)
        envoy = cls(example_path(name).relative_to(REPO), env=env, workdir=workdir, **kw)
        return envoy

    # ---- process

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        """The command line that starts this Envoy."""
        return [
            str(ENVOY_BIN), "-c", str(self.config_path),
            "--base-id", str(self.base_id),
            "--concurrency", str(self.concurrency),
            "-l", self.log_level,
            "--log-path", str(self.log_path),
            # Envoy flushes --log-path only every 10 s by default: tests read it sooner.
            "--file-flush-interval-msec", "100",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> "Envoy":
        """Start Envoy and wait until it is LIVE."""
        if not ENVOY_BIN.exists():
            raise EnvoyError(f"{ENVOY_BIN} is missing: run scripts/setup")
        self._stdout = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            env=_child_env(self.env, self.inherit_env),
            cwd=self.cwd or self.workdir,
            preexec_fn=_die_with_parent,
        )
        _running[self.proc.pid] = self
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll admin ``/ready`` until it says LIVE; raise EnvoyError with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise EnvoyError(f"envoy exited with status {code} before it was ready\n{self.failure_report()}")
            try:
                r = _session().get(self.admin_url("/ready"), timeout=1)
                if r.status_code == 200 and "LIVE" in r.text:
                    return
            except (OSError, _requests().RequestException):
                pass
            if time.monotonic() >= deadline:
                raise EnvoyError(f"envoy not LIVE after {timeout}s\n{self.failure_report()}")
            time.sleep(0.05)

    def failure_report(self) -> str:
        """Command, the last lines of Envoy's log and of its stdout/stderr."""
        return (
            f"command: {' '.join(self.command())}\n"
            f"--- {self.log_path} (last {LOG_TAIL_LINES} lines)\n{tail(self.log_text())}\n"
            f"--- {self.stdout_path} (last {LOG_TAIL_LINES} lines)\n{tail(self.access_log_text())}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop Envoy by PID: SIGTERM, wait, then SIGKILL. Returns the exit status. Idempotent."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            code = self.proc.returncode
            _running.pop(self.proc.pid, None)
        if getattr(self, "_stdout", None) is not None:
            self._stdout.close()
            self._stdout = None
        if self._own_workdir and not os.environ.get("TOKENGATE_KEEP_ENVOY_FILES"):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False
        return code

    def __repr__(self) -> str:
        return f"Envoy(pid={self.pid}, listener={self.scheme}://{HOST}:{self.listener_port}, admin={self.admin_port}, dir={self.workdir})"

    def __enter__(self) -> "Envoy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- talking to it

    def url(self, path: str = "/") -> str:
        """URL of ``path`` on the listener."""
        return f"{self.scheme}://{HOST}:{self.listener_port}{path}"

    def admin_url(self, path: str = "/") -> str:
        """URL of ``path`` on the admin interface."""
        return f"http://{HOST}:{self.admin_port}{path}"

    def _verify(self) -> Any:
        return str(self.ca_file) if self.ca_file else self.scheme != "https"

    def get(self, path: str, headers: Mapping[str, str] | None = None, **kw: Any) -> Any:
        """GET on the listener with requests (note: requests resolves ``.``/``..`` in paths; use ``request`` for verbatim paths)."""
        return self.send("GET", path, headers=headers, **kw)

    def post(self, path: str, data: Any = None, headers: Mapping[str, str] | None = None, **kw: Any) -> Any:
        """POST on the listener with requests."""
        return self.send("POST", path, headers=headers, data=data, **kw)

    def send(self, method: str, path: str, **kw: Any) -> Any:
        """Any method on the listener with requests; returns a ``requests.Response``."""
        kw.setdefault("timeout", 10)
        kw.setdefault("allow_redirects", False)
        kw.setdefault("verify", self._verify())
        return _session().request(method, self.url(path), **kw)

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
        host: str | None = None,
        client_cert: tuple[str | Path, str | Path] | None = None,
        timeout: float = 10.0,
    ) -> RawResponse:
        """One request sent verbatim with http.client: the path as given, headers
        as pairs (repeats allowed). ``host`` sets the Host header (default 127.0.0.1:port)."""
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if not self.ca_file:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if client_cert:
                ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(HOST, self.listener_port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(HOST, self.listener_port, timeout=timeout)
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        data = body.encode() if isinstance(body, str) else body
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("host", host or f"{HOST}:{self.listener_port}")
            for k, v in pairs:
                conn.putheader(k, v)
            if data or method in ("POST", "PUT", "PATCH"):
                conn.putheader("content-length", str(len(data)))
            conn.endheaders(data or None)
            resp = conn.getresponse()
            return RawResponse(resp.status, list(resp.getheaders()), resp.read(), resp.reason)
        finally:
            conn.close()

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes on a fresh connection (TLS when the listener has it) and read until close or timeout."""
        sock: socket.socket = socket.create_connection((HOST, int(self.listener_port or 0)), timeout=timeout)
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            ctx.check_hostname = False
            if not self.ca_file:
                ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        chunks: list[bytes] = []
        try:
            sock.sendall(data)
            while True:
                try:
                    chunk = sock.recv(65536)
                except (socket.timeout, ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            sock.close()
        return b"".join(chunks)

    def admin(self, path: str) -> Any:
        """GET on the admin interface (requests.Response)."""
        return _session().get(self.admin_url(path), timeout=10)

    def stats(self) -> dict[str, Any]:
        """Counters, gauges and text readouts from ``/stats?format=json`` (histograms left out)."""
        r = self.admin("/stats?format=json")
        r.raise_for_status()
        out: dict[str, Any] = {}
        for item in r.json().get("stats", []):
            if "name" in item:
                out[item["name"]] = item.get("value")
        return out

    def stat(self, name: str, default: Any = 0) -> Any:
        """One stat by full name (``wasmcustom.tokengate.allowed``), or ``default``."""
        return self.stats().get(name, default)

    def prometheus(self) -> str:
        """The text of ``/stats/prometheus``."""
        r = self.admin("/stats/prometheus")
        r.raise_for_status()
        return str(r.text)

    def prometheus_samples(self) -> dict[str, float]:
        """``/stats/prometheus`` as {series (name plus labels, as printed): value}."""
        out: dict[str, float] = {}
        for line in self.prometheus().splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            try:
                out[series] = float(value)
            except ValueError:
                continue
        return out

    def log_text(self) -> str:
        """Envoy's own log (``--log-path``). Envoy writes it out every 100 ms
        (``--file-flush-interval-msec``), so wait with ``wait_for_log``."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_log_text(self) -> str:
        """What Envoy wrote to stdout/stderr: the access log of the configs here
        (flushed like the log file: wait with ``wait_until``)."""
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_log_lines(self) -> list[str]:
        """The access log lines (stdout lines that are not Envoy's own log
        lines), split at line feeds only, as a log reader splits them."""
        return [line for line in self.access_log_text().split("\n") if line and not _ENVOY_LOG_LINE.match(line)]

    def access_log_entries(self) -> list[dict[str, Any]]:
        """Every access log line as its JSON object (``access_entry``; a line that is not one is a ValueError)."""
        return [access_entry(line) for line in self.access_log_lines()]

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until Envoy's log matches the regex ``pattern``; return the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()), timeout, 0.1, f"log line /{pattern}/")


_requests_session: Any = None


def _requests() -> Any:
    """The requests module, imported on first use."""
    import requests

    return requests


def _session() -> Any:
    """One requests.Session for the harness."""
    global _requests_session
    if _requests_session is None:
        _requests_session = _requests().Session()
        _requests_session.trust_env = False  # no proxies from the environment, ever
    return _requests_session


def stop_all() -> None:
    """Stop every Envoy this process started and that is still running."""
    for envoy in list(_running.values()):
        envoy.stop()


atexit.register(stop_all)


def validate(
    config: Mapping[str, Any] | str | Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    *,
    cwd: str | Path | None = None,
    inherit_env: bool = True,
) -> tuple[bool, str]:
    """Run ``envoy --mode validate``: (exit status was 0, combined output).

    ``config`` is a dict, YAML text, or a Path to a file (relative to ``cwd``,
    where Envoy runs, when given). ``inherit_env=False`` gives Envoy ``env``
    as its whole environment. Validation loads the wasm of HTTP filters and
    runs their on_configure (it does not start bootstrap extensions such as
    the revocation service).
    """
    with tempfile.TemporaryDirectory(prefix="tokengate-validate-") as tmp:
        path = _to_config_file(config, Path(tmp))
        proc = subprocess.run(
            [str(ENVOY_BIN), "--mode", "validate", "-c", str(path), "-l", "info"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_child_env(env, inherit_env),
            cwd=cwd,
            timeout=timeout,
            preexec_fn=_die_with_parent,
        )
    return proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------- tokens and lists


def mint(
    key_b64: str,
    *,
    kid: str | None = "demo",
    alg: str = "HS256",
    ttl: int = 900,
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A token signed with PyJWT by the base64 secret ``key_b64``.

    ``iat``, ``exp`` (iat + ttl) and a random ``jti`` are added unless given
    (pass ``exp=None`` etc. to leave one out).
    """
    import jwt

    now = int(time.time())
    body: dict[str, Any] = {"iat": now, "exp": now + ttl, "jti": secrets.token_hex(12)}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    hdr = dict(headers or {})
    if kid is not None:
        hdr.setdefault("kid", kid)
    return str(jwt.encode(body, base64.b64decode(key_b64 + "=" * (-len(key_b64) % 4)), algorithm=alg, headers=hdr))


def sign_list(document: Mapping[str, Any], key_b64: str, alg: str = "HS256") -> str:
    """A revocation list as JWS compact (typ ``tokengate-revocations``) signed with ``key_b64``."""
    import jwt

    key = base64.b64decode(key_b64 + "=" * (-len(key_b64) % 4))
    return str(jwt.encode(dict(document), key, algorithm=alg, headers={"typ": "tokengate-revocations"}))
