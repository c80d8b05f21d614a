//! The agent harness shared by the agent tests: start `gprof-bpf agent`, talk HTTP to it, run
//! fixtures, read profiles with `go tool pprof`.
#![allow(dead_code)] // each test binary uses its part

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gprof_testkit::go;

/// A running `gprof-bpf agent`, stopped with SIGTERM on drop.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

pub fn free_port(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

impl Agent {
    pub fn start(listen: SocketAddr, args: &[&str]) -> Agent {
        Agent::start_wrapped(&[], listen, args)
    }

    /// Started through `wrapper` (e.g. `setpriv ... --`).
    pub fn start_wrapped(wrapper: &[&str], listen: SocketAddr, args: &[&str]) -> Agent {
        let log = std::env::temp_dir().join(format!("gprof-agent-{}.log", listen.port()));
        let bin = env!("CARGO_BIN_EXE_gprof-bpf");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        // The CPU budget halves the rate when the agent is busy (on a loaded machine, at the
        // -F 99 many tests ask for), which thins windows and frames at random: off, unless
        // a test brings its own configuration (the budget test sets one there).
        let budget: &[&str] = if args.contains(&"--config") {
            &[]
        } else {
            &["--cpu-budget", "0"]
        };
        let child = cmd
            .arg("agent")
            .args(["--listen", &listen.to_string(), "--log-format", "json"])
            .args(budget)
            .args(args)
            .env_remove("GPROF_BPF_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the agent");
        let a = Agent {
            child,
            addr: listen,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(a.addr, "/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "agent not up: {}", a.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits: the agent flushes and exits 0.
    pub fn stop(mut self) -> String {
        // SAFETY: kill sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "agent exit {status}: {log}");
        log
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The capabilities the shipped systemd unit grants (`AmbientCapabilities=`), e.g. `CAP_BPF`.
pub fn unit_capabilities() -> Vec<String> {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/gprof-bpf-agent.service");
    std::fs::read_to_string(&unit)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("AmbientCapabilities="))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect()
}

/// `setpriv` arguments that run a command as root's uid with only `caps` (as systemd runs a
/// unit with `User=root` and a `CapabilityBoundingSet=`).
pub fn only_capabilities(caps: &[String]) -> Vec<String> {
    let set: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    vec![
        "setpriv".into(),
        "--bounding-set".into(),
        format!("-all,{}", set.join(",")),
        "--".into(),
    ]
}

/// A minimal HTTP GET: (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    get_from(None, addr, path, None)
}

pub fn get_from(
    from: Option<&str>,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<u8>) {
    let stream = match from {
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Some(ip) => {
            // Connect from a chosen local address (a non-loopback client).
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.bind(&format!("{ip}:0").parse::<SocketAddr>().unwrap().into())
                .unwrap();
            sock.connect(&addr.into()).map(|()| sock.into())
        }
    };
    let Ok(mut s) = stream else {
        return (0, Vec::new());
    };
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap_or(0);
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap_or(0);
    let body = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(Vec::new(), |i| rest[i + 4..].to_vec());
    (code, body)
}

pub fn newest_go() -> Option<String> {
    gprof_testkit::require_ok(go::newest(), "a Go toolchain")
}

/// A stripped hotloop fixture, running `mode` for `seconds`; its pid.
pub fn hotloop(version: &str, mode: &str, seconds: u32) -> Option<(Child, u32)> {
    run_hotloop(&hotloop_bin(version)?, mode, seconds)
}

/// The hotloop fixture built (stripped) with Go `version`.
pub fn hotloop_bin(version: &str) -> Option<PathBuf> {
    gprof_testkit::require_ok(
        go::build("hotloop", version, &["-ldflags=-s -w"], &[]),
        "building the hotloop fixture",
    )
}

/// Starts a hotloop binary in `mode` for `seconds` and waits for its `ready PID` line.
pub fn run_hotloop(bin: &Path, mode: &str, seconds: u32) -> Option<(Child, u32)> {
    let mut child = Command::new(bin)
        .args([mode, &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
    {
        Some(pid) => Some((child, pid)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// `go tool pprof ARGS` with Go `version`: stdout.
pub fn pprof(version: &str, args: &[&str]) -> String {
    let mut cmd = go::go_command(version).unwrap();
    let out = cmd
        .args(["tool", "pprof"])
        .args(args)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CPU seconds (user + system) of a child, from `wait4`.
pub fn wait_cpu(child: &mut Child) -> f64 {
    let mut status = 0;
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 on our own child writes status and the rusage struct.
    let ru = unsafe {
        libc::wait4(child.id() as i32, &mut status, 0, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Sum of `cpu/nanoseconds` over the profiles in `dir`, and how many there are.
pub fn cpu_in(version: &str, dir: &Path) -> (f64, usize) {
    let mut total = 0.0;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let raw = pprof(version, &["-raw", e.path().to_str().unwrap()]);
        assert!(raw.contains("PeriodType: cpu nanoseconds"), "{raw}");
        n += 1;
        let mut in_samples = false;
        for l in raw.lines() {
            if l.starts_with("Samples:") {
                in_samples = true;
                continue;
            }
            if l.starts_with("Locations") || l.starts_with("Mappings") {
                in_samples = false;
            }
            if !in_samples {
                continue;
            }
            // "     count    cpu_ns: loc ids"
            let mut w = l.split_whitespace();
            if let (Some(_), Some(ns)) = (w.next(), w.next())
                && let Some(ns) = ns.strip_suffix(':')
                && let Ok(ns) = ns.parse::<f64>()
            {
                total += ns / 1e9;
            }
        }
    }
    (total, n)
}

/// `/metrics` as (series → value), the series written as the agent prints it.
pub fn metrics(addr: SocketAddr) -> std::collections::HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}
