//! The official MCP conformance suite (`@modelcontextprotocol/conformance` 0.1.12, installed
//! under tests/clients by .ci/setup-server.sh) against the real binary. The fixture tools it
//! calls exist only with the cargo feature, so run:
//! `cargo test --features conformance --test server_conformance`.
#![cfg(feature = "conformance")]

mod server_support;

use std::path::Path;
use std::process::Command;

use server_support::Server;

/// Runs one suite and returns (passed, failed) from its closing `Total:` line.
fn run_suite(server: &Server, suite: &str) -> (u32, u32, String) {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/.bin/conformance");
    assert!(
        bin.exists(),
        "{} missing: run .ci/setup-server.sh (npm install in tests/clients)",
        bin.display()
    );
    let out = Command::new(&bin)
        .args([
            "server",
            "--url",
            &format!("{}/mcp", server.base),
            "--suite",
            suite,
        ])
        .output()
        .unwrap_or_else(|e| panic!("run conformance: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let total = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Total: "))
        .unwrap_or_else(|| panic!("no Total line in conformance output:\n{text}"))
        .to_string();
    let nums: Vec<u32> = total
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(u32::MAX),
        text,
    )
}

#[test]
fn official_conformance_active_suite_passes_every_check() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(dir.path(), &[], &[]);
    let (passed, failed, text) = run_suite(&server, "active");
    println!("conformance active suite: {passed} passed, {failed} failed");
    assert_eq!(failed, 0, "{text}");
    // 30 scenarios with 40 checks in 0.1.12; fewer means scenarios did not run.
    assert!(passed >= 40, "{text}");
}

#[test]
fn official_conformance_pending_suite_passes_every_check() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(dir.path(), &[], &[]);
    let (passed, failed, text) = run_suite(&server, "pending");
    println!("conformance pending suite: {passed} passed, {failed} failed");
    assert_eq!(failed, 0, "{text}");
    assert!(passed >= 6, "{text}");
}
