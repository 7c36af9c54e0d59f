//! Workflow text with `[Placeholder]`s (email subjects, display text, Wi-Fi names).
#![no_main]

use lanyard_server::workflows::placeholder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in placeholder::names(text) {
        assert!(text.contains(name));
    }
    let _ = placeholder::first_unknown(text, &[]);
});
