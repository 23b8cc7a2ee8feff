//! The sidecar's `--config` file parser,
//! `migwatch_sidecar::cli::config_to_flags`: no input may panic, errors
//! name the file, and what it accepts is a list of `--flag value` pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_sidecar::cli::config_to_flags;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config_to_flags("fuzz.toml", text) {
        Ok(flags) => {
            assert_eq!(flags.len() % 2, 0, "{flags:?}");
            for pair in flags.chunks(2) {
                assert!(pair[0].starts_with("--"), "{flags:?}");
            }
        }
        Err(e) => assert!(e.starts_with("config fuzz.toml"), "{e}"),
    }
});
