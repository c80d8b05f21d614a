//! Real backends' receivers for the agent's tests, built from the backends' own published Go
//! modules (`tests/receivers/*`, with committed `go.mod`/`go.sum`; the module proxy is needed
//! for the first build only) and started on loopback. Each saves what it received and writes
//! one JSON line per profile to `requests.jsonl`; faults are injected over its control API.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::go;

/// A running receiver; killed on drop.
pub struct Receiver {
    child: Child,
    pub addr: String,
    /// The gRPC address, for receivers that serve one.
    pub grpc: Option<String>,
    pub dir: PathBuf,
}

/// Builds `tests/receivers/NAME` with the newest installed Go (cached like the fixtures).
pub fn build(name: &str) -> Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../receivers")
        .join(name);
    let version = go::newest()?;
    go::build_dir(
        &src,
        &format!("receiver-{name}"),
        &version,
        &[],
        &[
            // The modules come from the proxy (the fixtures are offline); go.sum pins them.
            ("GOPROXY", "https://proxy.golang.org,direct"),
            ("GOFLAGS", "-mod=readonly"),
        ],
    )
}

impl Receiver {
    /// Builds and starts receiver `name`, writing under `dir`.
    pub fn start(name: &str, dir: &Path) -> Result<Receiver> {
        let bin = build(name)?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut child = Command::new(&bin)
            .arg("-out")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr"))?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading the ready line")?;
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("receiver {name}: no ready line ({e}): {line:?}");
            }
        };
        let addr = ready["addr"].as_str().unwrap_or_default().to_string();
        let grpc = ready["grpc"].as_str().map(str::to_string);
        Ok(Receiver {
            child,
            addr,
            grpc,
            dir: dir.to_path_buf(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gRPC endpoint, for receivers that serve one.
    pub fn grpc_url(&self) -> Option<String> {
        self.grpc.as_ref().map(|a| format!("http://{a}"))
    }

    /// Every profile received so far, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn control(&self, what: &str) -> Result<()> {
        let out = Command::new("curl")
            .args(["-sf", "-X", "POST"])
            .arg(format!("{}/control/{what}", self.url()))
            .output()
            .context("curl")?;
        if !out.status.success() {
            bail!("control {what}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// The next `n` requests get `status` (with `Retry-After` and a Connect error code when
    /// given).
    pub fn fail_next(
        &self,
        n: u32,
        status: u16,
        retry_after: Option<u32>,
        code: Option<&str>,
    ) -> Result<()> {
        let mut q = format!("fail?n={n}&status={status}");
        if let Some(r) = retry_after {
            q.push_str(&format!("&retry_after={r}"));
        }
        if let Some(c) = code {
            q.push_str(&format!("&code={c}"));
        }
        self.control(&q)
    }

    /// Every connection is dropped for `d`.
    pub fn down_for(&self, d: Duration) -> Result<()> {
        self.control(&format!("down?seconds={}", d.as_secs_f64()))
    }

    /// Every answer waits `d`.
    pub fn delay(&self, d: Duration) -> Result<()> {
        self.control(&format!("delay?ms={}", d.as_millis()))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
