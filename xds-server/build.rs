//! Finds the FileDescriptorSet that the `envoy-types` crate ships (`src/generated/types.bin`)
//! so `render` can print the exact protobufs it pushes as YAML, without protoc.

use std::path::{Path, PathBuf};

const CRATE: &str = "envoy-types-0.7.7";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(found) = candidates().into_iter().find(|p| p.is_file()) else {
        println!(
            "cargo:warning=cannot find {CRATE}/src/generated/types.bin in the cargo registry; `switchboard render` will print protobuf-free summaries"
        );
        write_out(&[]);
        return;
    };
    println!("cargo:rerun-if-changed={}", found.display());
    match std::fs::read(&found) {
        Ok(bytes) => write_out(&bytes),
        Err(e) => panic!("cannot read {}: {e}", found.display()),
    }
}

fn write_out(bytes: &[u8]) {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default())
        .join("envoy_descriptors.bin");
    if let Err(e) = std::fs::write(&out, bytes) {
        panic!("cannot write {}: {e}", out.display());
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        roots.push(PathBuf::from(home));
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(Path::new(&home).join(".cargo"));
    }
    let mut found = Vec::new();
    for root in roots {
        let Ok(registries) = std::fs::read_dir(root.join("registry/src")) else {
            continue;
        };
        for reg in registries.flatten() {
            found.push(reg.path().join(CRATE).join("src/generated/types.bin"));
        }
    }
    // A vendored checkout (`cargo vendor`).
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    found.push(manifest.join("../vendor/envoy-types/src/generated/types.bin"));
    found
}
