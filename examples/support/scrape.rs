//! A tiny Prometheus scraper for the demo (`--scrape FILE`): every interval, the `cutover_*`
//! samples of each target's `/metrics`, appended to FILE as `<unix ms> <target> <sample line>`,
//! plus phase marks as `<unix ms> # <text>`. scripts/migration-picture plots the file.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct Scraper {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    targets: Vec<(String, String)>,
    out: std::fs::File,
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The body of `GET /metrics` on `addr` (empty when it does not answer).
fn get_metrics(addr: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

impl Scraper {
    /// Start scraping into `file` (truncated) every `every`, until the process ends.
    pub fn start(file: &Path, every: Duration) -> anyhow::Result<Scraper> {
        let out = std::fs::File::create(file)?;
        let scraper = Scraper {
            inner: Arc::new(Mutex::new(Inner {
                targets: Vec::new(),
                out,
            })),
        };
        let s = scraper.clone();
        std::thread::spawn(move || loop {
            s.scrape_once();
            std::thread::sleep(every);
        });
        Ok(scraper)
    }

    pub fn add(&self, name: &str, addr: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.targets.push((name.to_string(), addr.to_string()));
    }

    /// A phase boundary, drawn as a labelled line on the picture.
    pub fn mark(&self, text: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(g.out, "{} # {text}", now_ms());
    }

    /// One scrape of every target (also called once more at the end of the demo).
    pub fn scrape_once(&self) {
        let targets = {
            let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            g.targets.clone()
        };
        let mut text = String::new();
        for (name, addr) in targets {
            let ts = now_ms();
            for line in get_metrics(&addr)
                .lines()
                .filter(|l| l.starts_with("cutover_"))
            {
                text.push_str(&format!("{ts} {name} {line}\n"));
            }
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = g.out.write_all(text.as_bytes());
    }
}
