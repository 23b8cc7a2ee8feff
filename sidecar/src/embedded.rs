//! The page built into the binary at compile time (see `build.rs`): the
//! files of Trunk's `dist/` when it held a page then, else none.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The built-in page's files, if the binary has one.
pub fn page() -> Option<&'static [(&'static str, &'static [u8])]> {
    FILES
        .iter()
        .any(|(p, _)| *p == "index.html")
        .then_some(FILES)
}
