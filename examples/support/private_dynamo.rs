//! Process helpers shared by the soak and the end-to-end bench (not an example of its own):
//! a private DynamoDB Local, signals, and a process's CPU time and state from /proc.
// Each example uses only some of them.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A DynamoDB Local of our own; stopped when dropped.
pub struct PrivateDynamo {
    pub child: Child,
    pub port: u16,
}

impl PrivateDynamo {
    pub fn start(dir: &Path, log: &Path) -> anyhow::Result<PrivateDynamo> {
        anyhow::ensure!(
            dir.join("DynamoDBLocal.jar").is_file(),
            "no DynamoDBLocal.jar in {} (run localstack/up.sh once, or pass --ddb-dir)",
            dir.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("java")
            .current_dir(dir)
            .args([
                "-Xms64m",
                "-XX:+UseSerialGC",
                "-Djava.library.path=./DynamoDBLocal_lib",
                "-jar",
                "DynamoDBLocal.jar",
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(log)?))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(log)?,
            ))
            .spawn()?;
        Ok(PrivateDynamo { child, port })
    }

    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }
}

impl Drop for PrivateDynamo {
    fn drop(&mut self) {
        self.signal("CONT");
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The process's user+sys CPU seconds, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Whether process `pid` has exited but is not yet reaped (a zombie): its /proc/<pid>/stat
/// still holds its final CPU times then, which [`Child::try_wait`] would discard.
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..)?.chars().next())
        .is_none_or(|state| state == 'Z' || state == 'X')
}
