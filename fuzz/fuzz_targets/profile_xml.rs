//! A Dynamic Config Profile an admin pastes: checked when saved; once accepted, filling
//! it for any clinician (whatever their name holds) yields a profile, never an error or
//! extra keys.
#![no_main]

use lanyard_mdm::dynamic::{DynamicProfile, ProfileVariables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (xml, name) = text.split_once('\u{0}').unwrap_or((text, "O'Brien & <Sons>"));
    let Ok(profile) = DynamicProfile::new(xml) else {
        return;
    };
    let vars = ProfileVariables::for_user(name, name, Some(name));
    let rendered = profile
        .render(&vars, "6F1D6B0A-0000-4000-8000-000000000000")
        .expect("an accepted profile renders for any user");
    plist::Value::from_reader_xml(rendered.as_slice()).expect("and is a plist");
});
