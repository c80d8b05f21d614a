//! The agent running (root: real eBPF program), checked from outside with Go's own tools:
//! the pprof endpoint read by `go tool pprof` on a stripped process, per-service windows in
//! the directory sink that add up to the target's CPU time as the kernel accounted it
//! (`wait4` rusage), and the endpoint's access rules.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

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

/// Over its memory limit the agent drops windows (and says so) instead of growing.
#[test]
fn over_the_memory_limit_windows_are_shed_and_counted() {
    if !gprof_testkit::require_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gprof-agent-shed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    // 1 MiB: below any real resident size.
    std::fs::write(&conf, "[limits]\nmemory_mib = 1\n").unwrap();
    let out = dir.join("profiles");
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--config",
            conf.to_str().unwrap(),
            "--window",
            "1s",
            "--directory",
            out.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(5));
    let m = metrics(agent.addr);
    let log = agent.stop();
    assert!(m["gprof_bpf_windows_shed_total"] >= 2.0, "{m:?}");
    assert!(log.contains("over the limit"), "{log}");
    let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(written, 0, "windows were written over the limit");
    std::fs::remove_dir_all(&dir).unwrap();
}
