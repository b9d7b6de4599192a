//! The soak run (examples/soak.rs), short: a few seconds from a few
//! connections, so the load generator and its invariants stay working.
//! The 60 s, 64-connection figures in the README come from a release build.

mod common;

use std::process::Command;

#[test]
fn a_short_soak_finds_no_5xx_and_no_double_redemption() {
    let output = Command::new(common::demo::example("soak"))
        .args(["--seconds", "3", "--connections", "8"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("codes redeemed twice: 0; 5xx: 0"),
        "{stdout}"
    );
    // Every part of the mix ran: tokens, replays refused, garbage refused.
    for status in ["200:", "400:", "405:", "413:"] {
        assert!(stdout.contains(status), "{status} missing: {stdout}");
    }
}
