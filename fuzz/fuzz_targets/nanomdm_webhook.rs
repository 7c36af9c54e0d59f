//! A NanoMDM webhook POST: its signature check, its stamp and its event (with the
//! plists inside), as the server reads them.
#![no_main]

use lanyard_mdm::nanomdm::{parse_webhook, signature_valid, webhook_meta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = webhook_meta(data);
    let _ = parse_webhook(data, None, None);
    // The signature path with a header made of the input's tail.
    let split = data.len() / 2;
    let header = std::str::from_utf8(&data[split..]).ok();
    let _ = signature_valid(&data[..split], b"hook-key", header);
    if let Some(udid) = std::str::from_utf8(data).ok() {
        if let Some(u) = lanyard_mdm::normalize_udid(udid) {
            assert_eq!(lanyard_mdm::normalize_udid(&u).as_deref(), Some(u.as_str()));
        }
        let _ = lanyard_mdm::normalize_serial(udid);
    }
});
