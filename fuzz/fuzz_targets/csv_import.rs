//! The users and carts CSV imports, as far as the file alone is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, csv)) = data.split_first() else {
        return;
    };
    let problems = if which % 2 == 0 {
        lanyard_server::import::parse_users(csv).1
    } else {
        lanyard_server::import::parse_launchpads(csv).1
    };
    // Every problem names its row (or the header), so IT can find it.
    for p in problems {
        assert!(p.starts_with("row ") || p.starts_with("header"), "{p}");
    }
});
