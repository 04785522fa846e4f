//! The workspace's binaries for tests that run them as processes (kill them, read their
//! exit code). Cargo sets `CARGO_BIN_EXE_<name>` only for the tests of the binary's own
//! package, and these tests live in the harness crate, so the binary is built here: a
//! no-op when it is up to date, and never a stale file left by an older build.

use std::{path::PathBuf, process::Command};

/// Path of the workspace binary `name` (`api` or `worker`), built with the same profile and
/// target directory as the running test.
pub fn binary(name: &str) -> PathBuf {
    let package = match name {
        "api" => "taquilla-api",
        "worker" => "taquilla-worker",
        other => panic!("no workspace binary {other:?}"),
    };
    // The test runs as <target>/<profile dir>/deps/<test binary>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lies in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("the target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("unreadable profile directory {}", profile_dir.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--package", package, "--bin", name])
        .args(["--profile", profile, "--manifest-path", manifest])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the {name} binary failed");
    profile_dir.join(name)
}
