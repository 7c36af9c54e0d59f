//! The simulator as a user runs it: a separate process with an embedded server, a day of
//! shifts, and a summary whose invariants must hold.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

#[test]
fn a_simulated_day_loses_no_event_and_ends_with_phone_and_server_agreeing() {
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-sim"))
        .args([
            "--embedded",
            "--devices",
            "40",
            "--ports",
            "8",
            "--seed",
            "7",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["events_lost"], 0, "{summary}");
    assert_eq!(summary["state_disagreements"], 0, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["devices"], 40);
    // The day happened: both shift changes tapped, most taps granted, every kind of
    // return played.
    let taps = summary["taps"].as_u64().unwrap();
    let granted = summary["grants_by_beep_code"]["1"].as_u64().unwrap();
    assert!(taps >= 40 && granted * 10 >= taps * 8, "{summary}");
    assert_eq!(summary["tap_to_unlock"]["count"].as_u64(), Some(granted));
    assert!(
        summary["sync_latency"]["count"].as_u64().unwrap() > 1000,
        "{summary}"
    );
    assert!(
        summary["offline_sync_attempts"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_lanyard-sim"))
        .args(["--devices", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose --embedded, --server URL"));
}
