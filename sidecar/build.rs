//! Builds the page into the binary: every file of the workspace's `dist/`
//! (Trunk's output), when it holds an `index.html`, becomes a static byte
//! slice in `$OUT_DIR/embedded.rs`. Without a built page the table is
//! empty and the sidecar serves its API only (or `--web-root`).
//!
//! `MIGWATCH_DIST=DIR` builds in another folder; `MIGWATCH_NO_EMBED=1`
//! builds none in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Most bytes built in: the page is under 1 MB; anything far bigger is a
/// wrong folder.
const MAX_TOTAL: u64 = 64 << 20;

fn walk(root: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = e.file_type()?;
        // Symlinks are skipped, as the server never follows them either.
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            out.push((path, e.path()));
        }
    }
    Ok(())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MIGWATCH_DIST");
    println!("cargo:rerun-if-env-changed=MIGWATCH_NO_EMBED");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = std::env::var_os("MIGWATCH_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("..").join("dist"));
    let off = std::env::var("MIGWATCH_NO_EMBED").is_ok_and(|v| v == "1");
    // Cargo reruns this script when anything under `dist` changes; a
    // missing folder would make it rerun (and rebuild the sidecar) on
    // every build, so an empty one is made for Trunk to fill later.
    if !off && !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    if !off && dist.exists() {
        println!("cargo:rerun-if-changed={}", dist.display());
    }
    let mut files = Vec::new();
    if !off && dist.join("index.html").is_file() {
        if let Err(e) = walk(&dist, "", &mut files) {
            println!(
                "cargo:warning=cannot read {}: {e}; building without the page",
                dist.display()
            );
            files.clear();
        }
    }
    let total: u64 = files
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if total > MAX_TOTAL {
        println!(
            "cargo:warning={} holds {total} bytes, more than a page: building without it",
            dist.display()
        );
        files.clear();
    }
    let mut code = String::from(
        "/// The page's files built in: (path inside dist/, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        let _ = writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("embedded.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
