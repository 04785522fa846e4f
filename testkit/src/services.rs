//! Services a test runs for itself: a private `redis-server` it may stop, an SMTP sink.

use std::{net::TcpListener, process::Stdio, time::Duration};

use uuid::Uuid;

/// A `redis-server` of the test's own, on a free port, that the test may stop and restart.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    /// The redis-server's process id (to pause it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test whose external service is missing: reported as SKIPPED, or a failure under
/// scripts/test.sh (TAQUILLA_REQUIRE_SERVICES), which always provides the services.
pub fn skipped(why: &str) {
    if std::env::var_os("TAQUILLA_REQUIRE_SERVICES").is_some() {
        panic!("required test service missing: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// A private aiosmtpd writing a Maildir, or `None` when aiosmtpd is not installed
/// (`SMTP_SINK_PYTHON` names a python that has it; scripts/test.sh sets it up).
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    pub maildir: std::path::PathBuf,
}

impl SmtpSink {
    pub async fn start() -> Option<Self> {
        let python = std::env::var("SMTP_SINK_PYTHON").unwrap_or_else(|_| "python3".into());
        let has = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = std::env::temp_dir().join(format!("taquilla-maildir-{}", Uuid::now_v7()));
        let child = std::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Self {
                    child,
                    port,
                    maildir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn wait_message(&self) -> Vec<u8> {
        let new = self.maildir.join("new");
        for _ in 0..200 {
            if let Some(entry) = std::fs::read_dir(&new).ok().and_then(|mut d| d.next()) {
                return std::fs::read(entry.unwrap().path()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message reached the SMTP sink");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
