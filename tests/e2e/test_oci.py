"""The module as an OCI image (docs/deployment.md, "The module as an OCI
image"), checked by tools that are not ours.

``tokengate package-oci`` writes the layout; ``skopeo`` (the containers
project's image library) reads it back, and copies it to a real registry
(Debian's ``docker-registry``, the CNCF distribution registry, started here on
127.0.0.1), the way the docs tell operators to push it. The registry then
serves the image as Istio's and Envoy Gateway's fetchers ask for it: the
manifest by tag, and the module layer by digest, byte for byte the built
module. Both tools are installed by scripts/setup; a missing one fails.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import free_port, wait_until

WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_CONFIG_LAYER = "application/vnd.module.wasm.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run scripts/setup (it installs skopeo and docker-registry from apt)", pytrace=False)
    return path


@pytest.fixture
def layout(cli_path: Path, wasm_path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "oci"
    subprocess.run([str(cli_path), "package-oci", "--module", str(wasm_path), "--out", str(out), "--tag", "e2e"], check=True, capture_output=True)
    return out


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A registry on 127.0.0.1 (its storage in tmp_path), stopped by pid."""
    binary = _tool("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/v2/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None  # died: stop waiting, fail below

    try:
        wait_until(up, 15, 0.1, "the registry")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(url: str, accept: str | None = None) -> tuple[bytes, Any]:
    request = urllib.request.Request(url, headers={"accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read(), r.headers


def test_skopeo_reads_the_layout_as_tokengate_wrote_it(layout: Path, wasm_path: Path) -> None:
    skopeo = _tool("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{layout}:e2e"], check=True, capture_output=True).stdout
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == entry["digest"]
    manifest = json.loads(raw)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [WASM_CONFIG_LAYER, WASM_LAYER]
    assert manifest["layers"][1]["digest"] == "sha256:" + hashlib.sha256(wasm_path.read_bytes()).hexdigest()


def test_pushed_with_skopeo_a_registry_serves_the_module_back(layout: Path, wasm_path: Path, registry: str) -> None:
    skopeo = _tool("skopeo")
    # The push the docs show, to a registry without TLS on loopback.
    subprocess.run(
        [skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{layout}:e2e", f"docker://{registry}/tokengate:e2e"],
        check=True,
        capture_output=True,
    )
    # What an image fetcher does: the manifest by tag, then the layers.
    body, headers = _get(f"http://{registry}/v2/tokengate/manifests/e2e", accept=OCI_MANIFEST)
    assert headers["content-type"] == OCI_MANIFEST
    manifest = json.loads(body)
    local = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    assert headers["docker-content-digest"] == local == "sha256:" + hashlib.sha256(body).hexdigest()
    layers = {layer["mediaType"]: layer for layer in manifest["layers"]}
    assert set(layers) == {WASM_CONFIG_LAYER, WASM_LAYER}
    module, _ = _get(f"http://{registry}/v2/tokengate/blobs/{layers[WASM_LAYER]['digest']}")
    assert module == wasm_path.read_bytes()
    config, _ = _get(f"http://{registry}/v2/tokengate/blobs/{layers[WASM_CONFIG_LAYER]['digest']}")
    assert config == b"{}"
