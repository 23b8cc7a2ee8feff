//! The page's files: from the copy built into the binary, or from
//! `--web-root`. Paths are checked before any file is touched, and no
//! symlink is followed, so nothing outside the page's folder is served.

use std::io::Read;
use std::path::{Path, PathBuf};
use warp::http::{header, HeaderValue, Response, StatusCode};

/// Longest request path served, and longest name in it (a file system's
/// own limit is 255 bytes a name).
const MAX_PATH: usize = 1024;
const MAX_NAME: usize = 255;
/// Largest file served from `--web-root`: the page's biggest file (the
/// WASM) is under 1 MB, and a file is read whole into memory.
const MAX_FILE: u64 = 32 << 20;

/// Where the page comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Files built into the binary: (path, bytes).
    Embedded(&'static [(&'static str, &'static [u8])]),
    /// A folder (`--web-root`), relative to the working directory.
    Dir(PathBuf),
}

/// A file found: its bytes, content type and validator.
#[derive(Debug)]
pub struct Found {
    body: Vec<u8>,
    name: String,
    etag: String,
}

/// The relative file name a URL path asks for, or `None` for any path
/// that is not a plain name inside the folder: `..`, `.`, empty segments,
/// NUL or other control characters, backslashes, invalid escapes or
/// UTF-8, and names too long. `/` and paths ending in `/` mean
/// `index.html`.
pub fn sanitize(url_path: &str) -> Option<String> {
    if url_path.len() > MAX_PATH * 3 {
        return None;
    }
    let raw = url_path.strip_prefix('/')?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            let (h, l) = (hex(bytes.get(i + 1))?, hex(bytes.get(i + 2))?);
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let mut path = String::from_utf8(out).ok()?;
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    if path.len() > MAX_PATH || path.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.len() > MAX_NAME {
            return None;
        }
    }
    Some(path)
}

/// The content type for a file name.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()) {
        Some(e) => match e.as_str() {
            "html" | "htm" => "text/html; charset=utf-8",
            "js" | "mjs" => "text/javascript; charset=utf-8",
            // `WebAssembly.instantiateStreaming` requires exactly this.
            "wasm" => "application/wasm",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            "ico" => "image/x-icon",
            "json" | "map" => "application/json",
            "txt" => "text/plain; charset=utf-8",
            _ => "application/octet-stream",
        },
        None => "application/octet-stream",
    }
}

/// Reads `rel` inside `root` without following any symlink: each folder
/// on the way and the file itself must be real, inside the root.
fn read_in_dir(root: &Path, rel: &str) -> Option<(Vec<u8>, String)> {
    let mut p = root.to_path_buf();
    let segs: Vec<&str> = rel.split('/').collect();
    for (n, seg) in segs.iter().enumerate() {
        p.push(seg);
        let md = std::fs::symlink_metadata(&p).ok()?;
        let last = n + 1 == segs.len();
        if md.file_type().is_symlink() || (last && !md.is_file()) || (!last && !md.is_dir()) {
            return None;
        }
    }
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // O_NOFOLLOW: a symlink swapped in after the check is refused too.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .ok()?;
    let md = f.metadata().ok()?;
    if !md.is_file() || md.len() > MAX_FILE {
        return None;
    }
    let mut body = Vec::with_capacity(md.len() as usize);
    f.take(MAX_FILE).read_to_end(&mut body).ok()?;
    let etag = format!("\"{:x}-{:x}-{:x}\"", md.len(), md.mtime(), md.mtime_nsec());
    Some((body, etag))
}

fn etag_of(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = d.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

impl Source {
    /// Finds a sanitized file name.
    pub fn find(&self, name: &str) -> Option<Found> {
        let (body, etag) = match self {
            Source::Embedded(files) => {
                let (_, body) = files.iter().find(|(p, _)| *p == name)?;
                (body.to_vec(), etag_of(body))
            }
            Source::Dir(root) => read_in_dir(root, name)?,
        };
        Some(Found {
            body,
            name: name.to_string(),
            etag,
        })
    }
}

/// Standard base64 with padding (for CSP hashes).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `'sha256-…'` sources for every inline `<script>` in an HTML page (Trunk's
/// loader is one), so the CSP can allow exactly them and no other inline
/// script.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<script") {
        let after = &rest[i..];
        let Some(close) = after.find('>') else { break };
        let tag = &after[..close];
        let body_start = close + 1;
        let Some(end) = after[body_start..].find("</script") else {
            break;
        };
        if !tag.contains("src=") {
            let body = &after[body_start..body_start + end];
            let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
            out.push(format!("'sha256-{}'", base64(d.as_ref())));
        }
        rest = &after[body_start + end..];
    }
    out
}

/// The page's Content-Security-Policy: its own scripts and the loader's
/// inline script only, WebAssembly compilation allowed, reads from any
/// origin (the page follows other sidecars), and no framing.
pub fn csp(html: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src *; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self'",
        inline_script_hashes(html).join(" ")
    )
}

/// The answer for a found file: 200, or 304 when `if_none_match` holds
/// its validator. `no-cache`: the browser revalidates, so a rebuilt page
/// is picked up at once.
pub fn respond(found: Found, if_none_match: Option<&str>) -> Response<Vec<u8>> {
    let ctype = content_type(&found.name);
    let not_modified = if_none_match.is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == found.etag || t.trim() == "*")
    });
    let mut r = Response::new(Vec::new());
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&found.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if ctype.starts_with("text/html") {
        let policy = csp(&String::from_utf8_lossy(&found.body));
        if let Ok(v) = HeaderValue::from_str(&policy) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if not_modified {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
    } else {
        *r.body_mut() = found.body;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sanitized() {
        assert_eq!(sanitize("/").as_deref(), Some("index.html"));
        assert_eq!(sanitize("/a/").as_deref(), Some("a/index.html"));
        assert_eq!(sanitize("/app.js").as_deref(), Some("app.js"));
        assert_eq!(sanitize("/x%2Ey").as_deref(), Some("x.y"));
        for bad in [
            "/index.html%00.js",
            "/../etc/passwd",
            "/a/../b",
            "/%2e%2e/x",
            "/./x",
            "//x",
            "/a\\b",
            "/%ff",
            "/%zz",
            "/%4",
            "x",
        ] {
            assert_eq!(sanitize(bad), None, "{bad}");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(300))), None);
        assert!(sanitize(&format!("/{}", "a".repeat(255))).is_some());
        assert_eq!(sanitize(&format!("/{}", "a/".repeat(600))), None);
    }

    #[test]
    fn symlinks_are_refused_files_served() {
        let dir = std::env::temp_dir().join(format!("mw-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("sub/a.js"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("leak")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        std::os::unix::fs::symlink("index.html", dir.join("inner")).unwrap();
        let s = Source::Dir(dir.clone());
        assert!(s.find("index.html").is_some());
        assert!(s.find("sub/a.js").is_some());
        assert!(s.find("sub").is_none(), "a folder is not a file");
        assert!(s.find("leak").is_none());
        assert!(s.find("etc/hostname").is_none());
        assert!(s.find("inner").is_none());
        assert!(s.find("missing").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn etags_give_304_and_html_gets_a_csp_with_its_inline_script() {
        static FILES: [(&str, &[u8]); 1] = [(
            "index.html",
            b"<html><script type=\"module\">init();</script><script src=\"/a.js\"></script></html>",
        )];
        let s = Source::Embedded(&FILES);
        let r = respond(s.find("index.html").unwrap(), None);
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        // sha256("init();"), base64: computed with `printf 'init();' | openssl dgst -sha256 -binary | base64`.
        assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
        assert!(
            csp.contains("'sha256-GEnM5q1nYY/iACnyMTdov+tNp9OFcBnnDgNXUXaVNXc='"),
            "{csp}"
        );
        assert_eq!(
            inline_script_hashes(std::str::from_utf8(FILES[0].1).unwrap()).len(),
            1
        );
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let r = respond(s.find("index.html").unwrap(), Some(&etag));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(r.body().is_empty());
    }

    #[test]
    fn base64_encodes() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }
}
