//! The agent running (root: real eBPF program), checked from outside with Go's own tools:
//! the pprof endpoint read by `go tool pprof` on a stripped process, per-service windows in
//! the directory sink that add up to the target's CPU time as the kernel accounted it
//! (`wait4` rusage), and the endpoint's access rules.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gprof_testkit::go;

/// A running `gprof-bpf agent`, stopped with SIGTERM on drop.
struct Agent {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

fn free_port(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

impl Agent {
    fn start(listen: SocketAddr, args: &[&str]) -> Agent {
        let log = std::env::temp_dir().join(format!("gprof-agent-{}.log", listen.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_gprof-bpf"))
            .arg("agent")
            .args(["--listen", &listen.to_string(), "--log-format", "json"])
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits: the agent flushes and exits 0.
    fn stop(mut self) -> String {
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

/// A minimal HTTP GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    get_from(None, addr, path, None)
}

fn get_from(
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

fn newest_go() -> Option<String> {
    gprof_testkit::require_ok(go::newest(), "a Go toolchain")
}

/// A stripped hotloop fixture, running `mode` for `seconds`; its pid.
fn hotloop(version: &str, mode: &str, seconds: u32) -> Option<(Child, u32)> {
    let bin = gprof_testkit::require_ok(
        go::build("hotloop", version, &["-ldflags=-s -w"], &[]),
        "building the hotloop fixture",
    )?;
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
fn pprof(version: &str, args: &[&str]) -> String {
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

#[test]
fn go_tool_pprof_reads_any_process_through_the_endpoint() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some((mut target, pid)) = hotloop(&v, "cpu", 30) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let agent = Agent::start(free_port("127.0.0.1"), &["-F", "99"]);
    let url = format!(
        "http://{}/debug/pprof/profile?pid={pid}&seconds=4",
        agent.addr
    );
    let top = pprof(&v, &["-top", &url]);
    // hotloop cpu: hotA about 2/3 of the CPU, hotB 1/3; both found by name in a stripped binary.
    let flat: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(flat.first(), Some(&"main.hotA"), "{top}");
    assert!(flat.contains(&"main.hotB"), "{top}");
    // Only that process: every sample carries its pid.
    let raw = pprof(&v, &["-raw", &url.replace("seconds=4", "seconds=2")]);
    let pids: std::collections::BTreeSet<&str> = raw
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pid:["))
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(
        pids.iter().all(|p| p.starts_with(&pid.to_string())),
        "{pids:?}"
    );
    // A pid that does not exist: 404 with the reason.
    let (code, body) = get(agent.addr, "/debug/pprof/profile?pid=999999999&seconds=1");
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&body).contains("no process 999999999"));
    let (code, _) = get(agent.addr, "/debug/pprof/profile?pid=1&seconds=9999");
    assert_eq!(code, 400);
    agent.stop();
    let _ = target.kill();
    let _ = target.wait();
}

/// This host's first non-loopback IPv4 address.
fn outside_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.254:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback()).then(|| ip.to_string())
}

#[test]
fn beyond_loopback_the_endpoint_wants_the_token() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(ip) = outside_ip() else {
        gprof_testkit::skip!("no non-loopback IPv4 address on this host");
    };
    let dir = std::env::temp_dir().join(format!("gprof-agent-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let conf = dir.join("agent.toml");
    std::fs::write(
        &conf,
        format!("[http]\ntoken = {{ file = \"{}\" }}\n", token.display()),
    )
    .unwrap();
    let addr = free_port("0.0.0.0");
    let agent = Agent::start(addr, &["--config", conf.to_str().unwrap()]);
    let there: SocketAddr = format!("{ip}:{}", addr.port()).parse().unwrap();
    let path = "/debug/pprof/profile?seconds=1";
    assert_eq!(get_from(Some(&ip), there, path, None).0, 403);
    assert_eq!(get_from(Some(&ip), there, path, Some("wrong")).0, 403);
    assert_eq!(get_from(Some(&ip), there, "/metrics", None).0, 403);
    assert_eq!(get_from(Some(&ip), there, path, Some("s3cret")).0, 200);
    // Loopback needs nothing.
    let local: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    assert_eq!(get(local, "/metrics").0, 200);
    let log = agent.stop();
    assert!(!log.contains("s3cret"), "the token is in the log");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CPU seconds (user + system) of a child, from `wait4`.
fn wait_cpu(child: &mut Child) -> f64 {
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
fn cpu_in(version: &str, dir: &Path) -> (f64, usize) {
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

#[test]
fn windows_per_service_add_up_to_the_kernels_cpu_time() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let dir = std::env::temp_dir().join(format!("gprof-agent-windows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--window",
            "2s",
            "--directory",
            dir.to_str().unwrap(),
            "-F",
            "99",
        ],
    );
    let Some((mut target, _pid)) = hotloop(&v, "cpu", 12) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let cpu = wait_cpu(&mut target);
    // The last window with its samples is cut within a drain interval and a window.
    std::thread::sleep(Duration::from_secs(3));
    agent.stop();
    let service = dir.join("example.com_hotloop");
    assert!(
        service.is_dir(),
        "no series directory for the Go module: {dir:?}"
    );
    let (recorded, files) = cpu_in(&v, &service);
    eprintln!("{files} windows, {recorded:.2} s recorded, {cpu:.2} s by the kernel");
    assert!(files >= 5, "{files} windows");
    assert!(
        (recorded - cpu).abs() <= 0.1 * cpu,
        "recorded {recorded:.2} s of CPU, the kernel says {cpu:.2} s"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
