//! The workspace's binaries for tests that run them as processes (kill them, read their
//! exit code). Cargo sets `CARGO_BIN_EXE_<name>` only for the tests of the binary's own
//! package, and these tests live in the harness crate, so the binary is built here: a
//! no-op when it is up to date, and never a stale file left by an older build.

use std::{path::PathBuf, process::Command};

/// Path of the workspace binary `name` (`api` or `worker`), built with the same profile and
/// target directory as the running test.
pub fn binary(name: &str) -> PathBuf {
    assert!(
        ["api", "worker"].contains(&name),
        "no workspace binary {name:?}"
    );
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
    let mut build = Command::new(cargo);
    // Cargo sets these for the test process only; inherited by the build they make some
    // build scripts (ring's among them) rerun, which rebuilds half the graph every time.
    for (var, _) in std::env::vars_os() {
        let set_for_the_test = var.to_str().is_some_and(|v| {
            v == "OUT_DIR"
                || [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                ]
                .iter()
                .any(|prefix| v.starts_with(prefix))
                || matches!(
                    v,
                    "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "CARGO_RUSTC_CURRENT_DIR"
                )
        });
        if set_for_the_test {
            build.env_remove(var);
        }
    }
    let status = build
        // Every binary of the workspace, with the workspace's features: the dependencies are
        // then those the test build already compiled (a single package would resolve other
        // features and rebuild them).
        .args(["build", "--quiet", "--workspace", "--bins"])
        .args(["--profile", profile, "--manifest-path", manifest])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the {name} binary failed");
    profile_dir.join(name)
}
