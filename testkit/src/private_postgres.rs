//! A Postgres server of the test's own (`initdb` + `pg_ctl` from the machine's Postgres
//! packages), on a free port, that the test may crash like a power cut takes a process
//! down: every server process SIGKILLed, then a restart through crash recovery.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Run the server's tools as this user (`initdb` refuses root).
    as_user: Option<&'static str>,
}

/// The directory of `initdb` and `pg_ctl`: `PG_BINDIR`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian, Ubuntu), or the `PATH`.
fn bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = found.pop() {
        return Some(dir);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = String::from_utf8(which.stdout).ok()?;
    Path::new(path.trim()).parent().map(Path::to_path_buf)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl PrivatePostgres {
    /// A fresh cluster, started; `None` when the Postgres server tools are not installed.
    ///
    /// Settings: no autovacuum, no background writer LRU writes, checkpoints an hour apart,
    /// so nothing but the test's own work and the WAL writer flushes the WAL (see
    /// [`PrivatePostgres::stall_wal_writer`]).
    pub async fn start() -> Option<Self> {
        let bin = bindir()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("taquilla-pg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).ok()?;
        let as_user = is_root().then_some("postgres");
        if let Some(user) = as_user {
            let _ = Command::new("chown")
                .args([&format!("{user}:"), dir.to_str()?])
                .status();
        }
        let pg = Self {
            port,
            dir,
            bin,
            as_user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        pg.restart().await;
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(e) = self.try_run(tool, args) {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "{e}\nserver log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut command = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The URL of database `name` on this server (created by the test harness when missing).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts the server (again, after [`PrivatePostgres::crash`]: through crash recovery)
    /// and waits until it accepts connections.
    pub async fn restart(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c autovacuum=off \
             -c bgwriter_lru_maxpages=0 -c checkpoint_timeout=3600 -c max_connections=200",
            self.port
        );
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private Postgres did not start on port {}", self.port);
    }

    fn postmaster(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(Path::new(&self.data()).join("postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    }

    fn children(&self, parent: u32) -> Vec<u32> {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Stops (SIGSTOP) the WAL writer: from here on, a commit that does not wait for the
    /// flush (`synchronous_commit = off`) stays in shared memory until a synchronous commit
    /// flushes the WAL past it, so a crash loses it.
    pub async fn stall_wal_writer(&self, pool: &sqlx::PgPool) {
        let pid: i32 =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
                .fetch_one(pool)
                .await
                .expect("the WAL writer's pid");
        signal("STOP", pid as u32);
    }

    /// SIGKILLs the postmaster and every server process at once: no shutdown checkpoint,
    /// no WAL flush.
    pub async fn crash(&self) {
        let Some(postmaster) = self.postmaster() else {
            panic!("private Postgres is not running");
        };
        // The postmaster first: alive, it would start new processes for the ones killed.
        let mut pids = vec![postmaster];
        pids.extend(self.children(postmaster));
        for pid in &pids {
            signal("KILL", *pid);
        }
        for _ in 0..200 {
            if !pids.iter().any(|p| alive(*p)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            !pids.iter().any(|p| alive(*p)),
            "private Postgres processes outlived SIGKILL"
        );
        // A new postmaster refuses to start while the old one's pid exists, and a killed
        // process keeps its pid until its parent (here init, which may be slow to) reaps
        // it: wait for that, then take the lock file away from a zombie that outlives it.
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{postmaster}")).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(Path::new(&self.data()).join("postmaster.pid"));
    }
}

/// Whether `pid` is a live process (a zombie waiting for its parent is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if let Some(postmaster) = self.postmaster() {
            let children = self.children(postmaster);
            signal("KILL", postmaster);
            for pid in children {
                signal("KILL", pid);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
