"""The Istio and Envoy Gateway resources under examples/ (docs/deployment.md,
"Istio" and "Envoy Gateway"), run in a real Envoy as their control planes
would configure it.

No Kubernetes here: the test turns each file into Envoy configuration with its
own model of the control plane's translation, written from Istio's and Envoy
Gateway's sources (independent of `tokengate check-config`, which has its own):

* Istio's ``WasmPlugin`` → an HTTP wasm filter whose ``PluginConfig`` has
  root id ``pluginName``, the JSON of ``pluginConfig`` as a ``StringValue``,
  ``vmConfig.env`` as ``host_env_keys`` (``valueFrom: HOST``) and NO
  ``vm_id`` (Istio's ``buildVMConfig`` sets none); ``failStrategy`` →
  ``failure_policy``. The ``EnvoyFilter``'s ``BOOTSTRAP`` ``MERGE`` patch is
  merged into the bootstrap.
* Envoy Gateway's ``EnvoyExtensionPolicy`` → a filter with root id
  ``rootID``, the JSON of ``config``, ``env.hostKeys`` as ``host_env_keys``
  and ``vm_id`` ``envoyextensionpolicy/NS/NAME/wasm/N`` (its wasm
  translator); the ``EnvoyProxy``'s ``spec.bootstrap.value`` is merged.

Only what cannot exist on this machine is replaced: the module comes from the
build instead of the registry and the mounted ConfigMap, and the list's
cluster points at a revocation source on 127.0.0.1 instead of the in-cluster
DNS name. Then: a valid token passes, a forged one and a revoked one do not,
so the list published by the service under the control plane's vm_id reaches
the filter; and with the service in any other vm_id (what check-config
refuses) it never does.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import yaml

from harness import REPO, STRING_VALUE_TYPE, WASM_FILTER_TYPE, bootstrap, free_port, mint, sign_list, wait_until
from servers import EchoServer, RevocationSource

ISS = "https://auth.example.com"
AUD = "orders-api"
MOUNTED_MODULE = "/etc/tokengate/tokengate.wasm"


def _resources(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((REPO / "examples" / name).read_text()) if d]


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def _plugin(root_id: str, vm_id: str | None, wasm: Path, config: Any, host_env_keys: list[str], **extra: Any) -> dict[str, Any]:
    vm: dict[str, Any] = {
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(wasm)}},
        "environment_variables": {"host_env_keys": host_env_keys},
    }
    if vm_id is not None:
        vm["vm_id"] = vm_id
    return {
        "root_id": root_id,
        "vm_config": vm,
        "configuration": {"@type": STRING_VALUE_TYPE, "value": json.dumps(config)},
        **extra,
    }


def istio_filter(docs: list[dict[str, Any]], wasm: Path) -> dict[str, Any]:
    plugin = _of_kind(docs, "WasmPlugin")
    spec = plugin["spec"]
    assert spec.get("type", "HTTP") == "HTTP"
    host_keys = [e["name"] for e in spec["vmConfig"]["env"] if e.get("valueFrom") == "HOST"]
    failure = {"FAIL_CLOSE": "FAIL_CLOSED", "FAIL_OPEN": "FAIL_OPEN", "FAIL_RELOAD": "FAIL_RELOAD"}[spec.get("failStrategy", "FAIL_CLOSE")]
    meta = plugin["metadata"]
    config = _plugin(spec["pluginName"], None, wasm, spec["pluginConfig"], host_keys, failure_policy=failure)
    config["name"] = f"{meta['namespace']}.{meta['name']}"
    return config


def istio_bootstrap_patch(docs: list[dict[str, Any]]) -> dict[str, Any]:
    patches = [p for p in _of_kind(docs, "EnvoyFilter")["spec"]["configPatches"] if p["applyTo"] == "BOOTSTRAP"]
    assert len(patches) == 1 and patches[0]["patch"]["operation"] == "MERGE"
    return copy.deepcopy(patches[0]["patch"]["value"])


def gateway_filter(docs: list[dict[str, Any]], wasm: Path) -> dict[str, Any]:
    policy = _of_kind(docs, "EnvoyExtensionPolicy")
    meta = policy["metadata"]
    (index, entry), = [(i, w) for i, w in enumerate(policy["spec"]["wasm"]) if w.get("rootID") == "tokengate"]
    vm_id = f"envoyextensionpolicy/{meta.get('namespace', 'default')}/{meta['name']}/wasm/{index}"
    config = _plugin(entry["rootID"], vm_id, wasm, entry["config"], entry["env"]["hostKeys"], fail_open=bool(entry.get("failOpen", False)))
    config["name"] = entry["name"]
    return config


def gateway_bootstrap_patch(docs: list[dict[str, Any]]) -> dict[str, Any]:
    bootstrap_spec = _of_kind(docs, "EnvoyProxy")["spec"]["bootstrap"]
    assert bootstrap_spec["type"] == "Merge"
    return yaml.safe_load(bootstrap_spec["value"])


def _localize(patch: dict[str, Any], wasm: Path, list_port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The patch's extensions and clusters, with the module from the build and
    the list's cluster on 127.0.0.1 (nothing else changed)."""
    extensions = patch["bootstrap_extensions"]
    for ext in extensions:
        code = ext["typed_config"]["config"]["vm_config"]["code"]["local"]
        assert code["filename"] == MOUNTED_MODULE
        code["filename"] = str(wasm)
    clusters = patch["static_resources"]["clusters"]
    for c in clusters:
        c["type"] = "STATIC"
        address = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        address.update({"address": "127.0.0.1", "port_value": list_port})
    return extensions, clusters


def _service_vm_id(extensions: list[dict[str, Any]]) -> str:
    (ext,) = extensions
    return ext["typed_config"]["config"]["vm_config"].get("vm_id", "")


def _run(envoys, wasm_path: Path, demo_key: str, list_key: str, filter_config: dict[str, Any], patch: dict[str, Any], *, service_vm_id: str | None = None) -> None:
    echo = EchoServer()
    source = RevocationSource()
    try:
        source.set(body=sign_list({"version": 1, "generated_at": int(time.time()), "entries": [{"jti": "gone"}]}, list_key), content_type="application/jwt")
        extensions, clusters = _localize(patch, wasm_path, source.port)
        if service_vm_id is not None:
            extensions[0]["typed_config"]["config"]["vm_config"]["vm_id"] = service_vm_id
        config = bootstrap(
            listener_port=free_port(),
            admin_port=free_port(),
            upstream_port=echo.port,
            http_filters=[{"name": "envoy.filters.http.wasm", "typed_config": {"@type": WASM_FILTER_TYPE, "config": filter_config}}],
            clusters=clusters,
            bootstrap_extensions=extensions,
        )
        envoy = envoys.start(config, env={"TOKENGATE_KEY_DEMO": demo_key, "TOKENGATE_LIST_KEY": list_key})
        wait_until(lambda: envoy.stat("wasmcustom.tokengate.revocation.fetch_ok") >= 1, 15, what="first list fetch")
        assert source.requests[0]["headers"]["host"] == "revocations.tokengate.svc.cluster.local"

        reader = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="r-1")
        auth = {"authorization": f"Bearer {reader}"}
        if service_vm_id is not None:
            # The list is fetched, but published where the filter never
            # reads: every token waits for a list that never comes.
            time.sleep(2.5)
            r = envoy.get("/orders/7", headers=auth)
            assert r.status_code == 503 and r.json()["reason"] == "revocation_unavailable", r.text
            return
        wait_until(lambda: envoy.get("/orders/7", headers=auth).status_code != 503, 7, 0.2, "list at the workers")
        r = envoy.get("/orders/7", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["headers"]["x-auth-subject"] == "alice"
        forged = mint(list_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, kid="demo")
        r = envoy.get("/orders/7", headers={"authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and r.json()["reason"] == "bad_signature", r.text
        revoked = mint(demo_key, sub="alice", scope="orders:read", iss=ISS, aud=AUD, jti="gone")
        r = envoy.get("/orders/7", headers={"authorization": f"Bearer {revoked}"})
        assert r.status_code == 401 and r.json()["reason"] == "revoked", r.text
        assert envoy.post("/orders", headers=auth).status_code == 403
    finally:
        envoys.stop_all()
        source.stop()
        echo.stop()


def test_the_istio_resources_run_as_istio_configures_envoy(envoys, wasm_path: Path, demo_key: str, list_key: str) -> None:
    docs = _resources("istio/tokengate.yaml")
    patch = istio_bootstrap_patch(docs)
    assert _service_vm_id(patch["bootstrap_extensions"]) == ""
    _run(envoys, wasm_path, demo_key, list_key, istio_filter(docs, wasm_path), patch)


def test_under_istio_a_service_in_vm_id_tokengate_never_reaches_the_filter(envoys, wasm_path: Path, demo_key: str, list_key: str) -> None:
    # Why the Istio example's service sets vm_id "" and check-config
    # refuses "tokengate" there.
    docs = _resources("istio/tokengate.yaml")
    _run(envoys, wasm_path, demo_key, list_key, istio_filter(docs, wasm_path), istio_bootstrap_patch(docs), service_vm_id="tokengate")


def test_the_envoy_gateway_resources_run_as_envoy_gateway_configures_envoy(envoys, wasm_path: Path, demo_key: str, list_key: str) -> None:
    docs = _resources("envoy-gateway/tokengate.yaml")
    patch = gateway_bootstrap_patch(docs)
    assert _service_vm_id(patch["bootstrap_extensions"]) == "envoyextensionpolicy/default/tokengate/wasm/0"
    _run(envoys, wasm_path, demo_key, list_key, gateway_filter(docs, wasm_path), patch)
