//! `tokengate package-oci` (docs/deployment.md, "The module as an OCI
//! image"): the layout holds the module as the uncompressed wasm layer of a
//! Wasm OCI artifact, every blob under its own digest.

use sha2::{Digest, Sha256};

use crate::util::Dir;

/// The smallest valid wasm module: magic and version.
const MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn blob(dir: &Dir, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(dir.path(&format!("oci/blobs/sha256/{hex}"))).unwrap();
    assert_eq!(sha256(&bytes), hex, "a blob stored under another digest");
    bytes
}

#[test]
fn the_layout_holds_the_module_as_its_wasm_layer() {
    let dir = Dir::new();
    dir.write("module.wasm", MODULE);
    let run = dir
        .run(&[
            "package-oci",
            "--module",
            "module.wasm",
            "--out",
            "oci",
            "--tag",
            "1.2.3",
        ])
        .ok();
    let module_sha = sha256(MODULE);
    assert!(
        run.stdout.contains(&format!("module sha256:{module_sha}")),
        "{}",
        run.stdout
    );

    let layout: serde_json::Value = serde_json::from_str(&dir.read("oci/oci-layout")).unwrap();
    assert_eq!(layout, serde_json::json!({"imageLayoutVersion": "1.0.0"}));

    let index: serde_json::Value = serde_json::from_str(&dir.read("oci/index.json")).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let entry = &manifests[0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.3"
    );
    let manifest_digest = entry["digest"].as_str().unwrap();
    assert!(run.stdout.contains(manifest_digest), "{}", run.stdout);
    let manifest_bytes = blob(&dir, manifest_digest);
    assert_eq!(entry["size"], manifest_bytes.len());

    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // The two layers Istio's fetcher reads as the "oci" variant: the wasm
    // configuration, then the module, uncompressed.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.module.wasm.config.v1+json"
    );
    assert_eq!(blob(&dir, layers[0]["digest"].as_str().unwrap()), b"{}");
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    assert_eq!(layers[1]["digest"], format!("sha256:{module_sha}"));
    assert_eq!(layers[1]["size"], MODULE.len());
    assert_eq!(blob(&dir, layers[1]["digest"].as_str().unwrap()), MODULE);

    let config_descriptor = &manifest["config"];
    assert_eq!(
        config_descriptor["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config_bytes = blob(&dir, config_descriptor["digest"].as_str().unwrap());
    assert_eq!(config_descriptor["size"], config_bytes.len());
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([layers[0]["digest"], layers[1]["digest"]])
    );
    // Nothing but the four blobs.
    let blobs = std::fs::read_dir(dir.path("oci/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 4);
}

#[test]
fn the_same_module_gives_the_same_image() {
    let dir = Dir::new();
    dir.write("module.wasm", MODULE);
    let a = dir
        .run(&["package-oci", "--module", "module.wasm", "--out", "a"])
        .ok();
    let b = dir
        .run(&["package-oci", "--module", "module.wasm", "--out", "b"])
        .ok();
    let digest = |out: &str| out.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(digest(&a.stdout), digest(&b.stdout));
    assert_eq!(dir.read("a/index.json"), dir.read("b/index.json"));
    // The default tag is the package's version.
    assert!(
        a.stdout
            .contains(&format!("tagged {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        a.stdout
    );
}

#[test]
fn refuses_what_it_cannot_package() {
    let dir = Dir::new();
    dir.write("module.wasm", MODULE);
    dir.write("not.wasm", "#!/bin/sh\n");
    dir.run(&["package-oci", "--module", "not.wasm", "--out", "o1"])
        .error(2, &["--module", "not.wasm", "not a wasm module"]);
    dir.run(&["package-oci", "--module", "missing.wasm", "--out", "o2"])
        .error(2, &["missing.wasm"]);
    dir.run(&[
        "package-oci",
        "--module",
        "module.wasm",
        "--out",
        "o3",
        "--tag",
        "a/b",
    ])
    .error(2, &["--tag", "a/b"]);
    // Never over an existing image.
    std::fs::create_dir(dir.path("full")).unwrap();
    dir.write("full/keep", "x");
    dir.run(&["package-oci", "--module", "module.wasm", "--out", "full"])
        .error(2, &["--out", "not an empty directory"]);
    assert_eq!(dir.read("full/keep"), "x");
}
