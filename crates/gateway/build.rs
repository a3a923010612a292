//! Embeds the browser UI built by Vite (`web/dist`, from `npm run build` in `web/`) into
//! the gateway: writes `$OUT_DIR/assets.rs` with every file's URL path, bytes and type.
//! Without a built UI the gateway still builds (with a warning) and its pages say how to
//! build the UI; `make run` and `make test` always build it first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    } else {
        println!("cargo:warning=web/dist is missing: the browser UI is not embedded (run `make ui`)");
    }
    files.sort();
    let mut out =
        String::from("/// The built UI's files: URL path, bytes, content type.\npub static FILES: &[Asset] = &[\n");
    for (url, path) in &files {
        let path = path.canonicalize().expect("a file just listed");
        writeln!(out, "    Asset {{ path: {url:?}, bytes: include_bytes!({path:?}), content_type: {:?} }},", kind(url))
            .expect("writing to a String");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    std::fs::write(target, out).expect("writing assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e != "map") {
            let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
            files.push((format!("/{relative}"), path));
        }
    }
}

fn kind(url: &str) -> &'static str {
    match url.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
