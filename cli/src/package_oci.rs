//! `tokengate package-oci`: the module as an OCI image layout, the form in
//! which Istio and Envoy Gateway pull a wasm plugin (docs/deployment.md,
//! "The module as an OCI image").
//!
//! The image is the Wasm OCI artifact both control planes read (the "oci"
//! variant of the Wasm image format, which Istio's image fetcher and Envoy
//! Gateway's, a copy of it, accept): two layers, the wasm configuration
//! (`application/vnd.module.wasm.config.v1+json`, `{}`) and the module itself,
//! uncompressed (`application/vnd.module.wasm.content.layer.v1+wasm`), so the
//! layer's digest is the module's sha256, the very value a `WasmPlugin`'s
//! `sha256` or an `EnvoyExtensionPolicy`'s `image.sha256` pins. The manifest,
//! index and configuration are written with `oci-spec`, the OCI's own types;
//! the layout is the directory structure of the OCI image-layout
//! specification: `oci-layout`, `index.json`, `blobs/sha256/…`. Nothing in it
//! depends on the time or the machine: the same module gives the same digests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    Arch, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, OciLayoutBuilder, Os, RootFsBuilder, Sha256Digest, ANNOTATION_REF_NAME,
    ANNOTATION_TITLE, SCHEMA_VERSION,
};
use sha2::{Digest as _, Sha256};

use crate::util;

/// The wasm configuration layer's media type.
pub const WASM_CONFIG_LAYER: &str = "application/vnd.module.wasm.config.v1+json";
/// The module layer's media type.
pub const WASM_CONTENT_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// Package a wasm module as an OCI image layout that Istio and Envoy Gateway can pull
#[derive(clap::Args)]
#[command(
    after_help = "Writes DIR as an OCI image layout (oci-layout, index.json, blobs/sha256/) holding one image, tagged TAG: \
the Wasm OCI artifact (a wasm config layer and the module as an uncompressed layer, whose digest is the module's \
sha256). DIR must not exist or be empty. Prints the manifest digest and the module's sha256.\n\n\
Exit status: 0 written, 2 bad usage or an error.\n\n\
Examples:\n  tokengate package-oci --out target/oci/tokengate\n  \
oras cp --from-oci-layout target/oci/tokengate:0.1.0 registry.example.com/tokengate:0.1.0\n  \
skopeo copy oci:target/oci/tokengate:0.1.0 docker://registry.example.com/tokengate:0.1.0"
)]
pub struct Args {
    /// The module to package
    #[arg(
        long,
        value_name = "FILE",
        default_value = "target/wasm32-wasip1/release/tokengate.wasm"
    )]
    module: PathBuf,
    /// The directory to write the layout to
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The image's tag in the layout (its ref name)
    #[arg(long, value_name = "TAG", default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let module = util::read_file(&args.module)?;
    if !module.starts_with(b"\0asm") {
        bail!("--module: {} is not a wasm module", args.module.display());
    }
    if !is_reference_tag(&args.tag) {
        bail!("--tag: {:?} is not a valid tag (letters, digits, '_', '.', '-'; up to 128, not starting with '.' or '-')", args.tag);
    }
    let layout = Layout::create(&args.out)?;
    let image = write_image(&layout, &module, &args.tag)?;
    util::outln(format_args!(
        "{}: {} tagged {}\nmodule sha256:{}",
        args.out.display(),
        image.manifest,
        args.tag,
        image.module_sha256
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// What was written.
pub struct Image {
    /// `sha256:…` of the manifest.
    pub manifest: String,
    /// Hex sha256 of the module (the layer's digest).
    pub module_sha256: String,
}

struct Layout {
    root: PathBuf,
}

impl Layout {
    fn create(root: &Path) -> Result<Layout> {
        if root.exists()
            && fs::read_dir(root)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            bail!(
                "--out: {} exists and is not an empty directory",
                root.display()
            );
        }
        fs::create_dir_all(root.join("blobs/sha256"))
            .with_context(|| format!("--out: cannot create {}", root.display()))?;
        Ok(Layout {
            root: root.to_owned(),
        })
    }

    /// Stores a blob under its digest; returns the digest and size.
    fn blob(&self, bytes: &[u8]) -> Result<(Sha256Digest, u64)> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        let path = self.root.join("blobs/sha256").join(&hex);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok((hex.parse()?, bytes.len() as u64))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.root.join(name);
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn write_image(layout: &Layout, module: &[u8], tag: &str) -> Result<Image> {
    let (wasm_config, wasm_config_size) = layout.blob(b"{}")?;
    let (wasm, wasm_size) = layout.blob(module)?;
    let layers = vec![
        DescriptorBuilder::default()
            .media_type(MediaType::Other(WASM_CONFIG_LAYER.into()))
            .digest(wasm_config.clone())
            .size(wasm_config_size)
            .build()?,
        DescriptorBuilder::default()
            .media_type(MediaType::Other(WASM_CONTENT_LAYER.into()))
            .digest(wasm.clone())
            .size(wasm_size)
            .annotations([(ANNOTATION_TITLE.to_owned(), "tokengate.wasm".to_owned())])
            .build()?,
    ];
    // The image configuration: the layers are uncompressed, so their diff
    // ids are their digests. No creation time: the same module, the same
    // image.
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other("wasip1".into()))
        .rootfs(
            RootFsBuilder::default()
                .diff_ids(vec![
                    format!("sha256:{wasm_config}"),
                    format!("sha256:{wasm}"),
                ])
                .build()?,
        )
        .build()?;
    let (config_digest, config_size) = layout.blob(config.to_string()?.as_bytes())?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(config_digest)
                .size(config_size)
                .build()?,
        )
        .layers(layers)
        .build()?;
    let (manifest_digest, manifest_size) = layout.blob(manifest.to_string()?.as_bytes())?;
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(manifest_digest.clone())
            .size(manifest_size)
            .annotations([(ANNOTATION_REF_NAME.to_owned(), tag.to_owned())])
            .build()?])
        .build()?;
    layout.file("index.json", index.to_string()?.as_bytes())?;
    let oci_layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    layout.file("oci-layout", oci_layout.to_string()?.as_bytes())?;
    Ok(Image {
        manifest: format!("sha256:{manifest_digest}"),
        module_sha256: wasm.to_string(),
    })
}

/// A tag as the OCI distribution specification allows it:
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_reference_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes.iter().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || *b == b'_' || (i > 0 && (*b == b'.' || *b == b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::is_reference_tag;

    #[test]
    fn tags_follow_the_distribution_specification() {
        for ok in ["0.1.0", "latest", "_x", "v1-rc.2", &"a".repeat(128)] {
            assert!(is_reference_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", &"a".repeat(129)] {
            assert!(!is_reference_tag(bad), "{bad}");
        }
    }
}
