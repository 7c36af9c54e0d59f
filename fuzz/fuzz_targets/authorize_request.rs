//! A phone's authorize body (a badge or a password), as the server decodes it.
#![no_main]

use lanyard_protocol::AuthorizeRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<AuthorizeRequest>(data) else {
        return;
    };
    let again = serde_json::to_vec(&req).expect("a decoded request encodes");
    let back: AuthorizeRequest = serde_json::from_slice(&again).expect("and decodes again");
    assert_eq!(back.request_id, req.request_id);
    assert_eq!(back.device_id, req.device_id);
});
