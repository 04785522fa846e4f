//! The worker reads `TAQUILLA_ENV` like the api: a value that is neither `development` nor
//! `production` stops it at start with a configuration error naming the variable.

use std::{process::Command, time::Duration};

#[test]
fn a_bad_taquilla_env_stops_the_worker_at_start() {
    let mut child = Command::new(testkit::binary("worker"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TAQUILLA_ENV", "staging")
        // Were the value accepted, the worker would fail later, on this database, with
        // another exit code.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("LOG_FORMAT", "text")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker binary");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the worker still runs with TAQUILLA_ENV=staging");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("TAQUILLA_ENV"), "{text}");
}
