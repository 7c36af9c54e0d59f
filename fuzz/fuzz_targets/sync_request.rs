//! A phone's sync body, as the server decodes it, and what the mirror folds from it.
#![no_main]

use lanyard_protocol::sync::SyncRequest;
use lanyard_server::domain::mirror;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<SyncRequest>(data) else {
        return;
    };
    let observed = mirror::observe(&req.events);
    let _ = mirror::passcode_after(None, observed.passcode);
    // What decodes re-encodes, and decodes to the same request.
    let again = serde_json::to_vec(&req).expect("a decoded request encodes");
    let back: SyncRequest = serde_json::from_slice(&again).expect("and decodes again");
    assert_eq!(back, req);
});
