//! The agent running (root: real eBPF program), checked from outside with Go's own tools:
//! the pprof endpoint read by `go tool pprof` on a stripped process, per-service windows in
//! the directory sink that add up to the target's CPU time as the kernel accounted it
//! (`wait4` rusage), and the endpoint's access rules.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Run with only the capabilities the systemd unit grants (root's uid, that bounding set, as
/// systemd runs it), the agent serves the profile of another process to `go tool pprof`.
#[test]
fn go_tool_pprof_reads_any_process_through_the_endpoint() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some((mut target, pid)) = hotloop(&v, "cpu", 30) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let caps = unit_capabilities();
    assert!(caps.contains(&"CAP_BPF".to_string()), "{caps:?}");
    let wrapper = only_capabilities(&caps);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let agent = Agent::start_wrapped(&wrapper, free_port("127.0.0.1"), &["-F", "99"]);
    // Really without root's other capabilities (CAP_SYS_ADMIN is bit 21).
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(
        cap_eff & (1 << 21),
        0,
        "the agent has CAP_SYS_ADMIN: {cap_eff:x}"
    );
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

/// Without CAP_BPF the agent does not start, and says which capability is missing.
#[test]
fn a_missing_capability_is_named() {
    if !gprof_testkit::require_root() {
        return;
    }
    let caps: Vec<String> = unit_capabilities()
        .into_iter()
        .filter(|c| c != "CAP_BPF")
        .collect();
    let wrapper = only_capabilities(&caps);
    let out = std::process::Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_gprof-bpf"))
        .args(["agent", "--listen", &free_port("127.0.0.1").to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without CAP_BPF: {err}");
    assert!(err.contains("CAP_BPF"), "{err}");
    assert!(!err.contains("CAP_PERFMON"), "names one it has: {err}");
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

/// Windows per service add up to the target's CPU time, also while the CPU budget (set
/// below anything the agent can meet) halves the sampling rate during the run: samples are
/// weighted by measured time, so a lower rate costs resolution, not CPU time.
#[test]
fn windows_per_service_add_up_to_the_kernels_cpu_time() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let dir = std::env::temp_dir().join(format!("gprof-agent-windows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    std::fs::write(&conf, "[limits]\ncpu_percent = 0.001\n").unwrap();
    let out = dir.join("profiles");
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--config",
            conf.to_str().unwrap(),
            "--window",
            "2s",
            "--directory",
            out.to_str().unwrap(),
            "-F",
            "99",
        ],
    );
    let Some((mut target, _pid)) = hotloop(&v, "cpu", 14) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let cpu = wait_cpu(&mut target);
    // The last window with its samples is cut within a drain interval and a window.
    std::thread::sleep(Duration::from_secs(3));
    let m = metrics(agent.addr);
    let log = agent.stop();
    let service = out.join("example.com_hotloop");
    assert!(
        service.is_dir(),
        "no series directory for the Go module: {out:?}"
    );
    let (recorded, files) = cpu_in(&v, &service);
    let rate = m["gprof_bpf_sampling_rate_hz"];
    eprintln!(
        "{files} windows, {recorded:.2} s recorded, {cpu:.2} s by the kernel; rate lowered {} times to {rate} Hz",
        m["gprof_bpf_rate_lowered_total"]
    );
    assert!(files >= 5, "{files} windows");
    assert!(
        m["gprof_bpf_rate_lowered_total"] >= 1.0 && rate < 99.0,
        "the CPU budget did not lower the rate: {m:?}"
    );
    assert!(log.contains("over the budget"), "not logged: {log}");
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
    // --log-format json: every line is one JSON object with a level and a message.
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(written, 0, "windows were written over the limit");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGHUP re-reads the configuration file: windows go to the new directory afterwards; a
/// file with a bad value is refused and the running configuration is kept.
#[test]
fn sighup_reloads_the_configuration() {
    if !gprof_testkit::require_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gprof-agent-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let with_dir = |d: &std::path::Path| {
        format!(
            "window = \"1s\"\n[[directory]]\npath = {:?}\n",
            d.to_str().unwrap()
        )
    };
    std::fs::write(&conf, with_dir(&a)).unwrap();
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &["--config", conf.to_str().unwrap()],
    );
    let hup = || {
        // SAFETY: kill sends a signal to our own child.
        unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) };
    };
    let files = |d: &std::path::Path| walk(d).len();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while files(&a) == 0 {
        assert!(std::time::Instant::now() < deadline, "no window in {a:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A bad value: refused, the agent keeps writing to a.
    std::fs::write(&conf, "window = \"soon\"\n").unwrap();
    hup();
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&conf, with_dir(&b)).unwrap();
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while files(&b) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no window in {b:?} after SIGHUP: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = agent.stop();
    assert!(
        log.contains("reload refused") && log.contains("window"),
        "{log}"
    );
    assert!(log.contains("configuration reloaded"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file under `d`.
fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A process in its own pid and mount namespaces (as in a container): its binary is at a
/// path that exists only in its mount namespace, and inside it is pid 1. The agent (in the
/// host's namespaces) profiles it, symbolizes it from the binary it really runs, and labels
/// it by its host pid.
#[test]
fn a_process_in_its_own_namespaces_is_profiled_by_its_host_pid() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(bin) = hotloop_bin(&v) else { return };
    let dir = std::env::temp_dir().join(format!("gprof-agent-ns-{}", std::process::id()));
    let (src, mnt) = (dir.join("image"), dir.join("app"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::copy(&bin, src.join("server")).unwrap();
    // Inside: bind the image over /app (only in the new mount namespace) and run from it.
    let script = format!(
        "mount --bind {} {} && exec {}/server cpu 30",
        src.display(),
        mnt.display(),
        mnt.display()
    );
    let mut ctr = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount",
            "--propagation",
            "private",
            "--mount-proc",
        ])
        .args(["sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ctr.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready 1", "inside its namespace it is pid 1");
    assert!(
        !mnt.join("server").exists(),
        "the binary's path must not exist on the host"
    );
    // Its host pid: the process whose exe is our copy, in another pid namespace.
    let host_pid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(&format!("{}/server", mnt.display())))
        })
        .expect("the namespaced process");
    let agent = Agent::start(free_port("127.0.0.1"), &["-F", "99"]);
    let url = format!(
        "http://{}/debug/pprof/profile?pid={host_pid}&seconds=3",
        agent.addr
    );
    let raw = pprof(&v, &["-raw", &url]);
    agent.stop();
    let _ = ctr.kill();
    let _ = ctr.wait();
    // unshare's child (pid 1 inside) dies with the namespace's init: killed above.
    let _ = std::process::Command::new("kill")
        .args(["-9", &host_pid.to_string()])
        .status();
    assert!(raw.contains("main.hotA"), "not symbolized: {raw}");
    assert!(raw.contains(&format!("pid:[{host_pid}]")), "{raw}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent in a container of its own (its own mount namespace, the host's pid namespace, as
/// a DaemonSet runs it): the target's binary is not at its path there (a tmpfs hides the
/// directory), and the agent still symbolizes it, through /proc/PID/map_files.
#[test]
fn an_agent_in_its_own_mount_namespace_symbolizes_host_processes() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(bin) = hotloop_bin(&v) else { return };
    let dir = std::env::temp_dir().join(format!("gprof-agent-ctr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = dir.join("server");
    std::fs::copy(&bin, &server).unwrap();
    let Some((mut target, pid)) = run_hotloop(&server, "cpu", 30) else {
        panic!("hotloop did not start");
    };
    // The agent's view: the directory is an empty tmpfs; the check that it is runs in the
    // same namespace, just before the agent starts.
    let hide = format!(
        "mount -t tmpfs tmpfs {d} && test ! -e {d}/server && exec \"$@\"",
        d = dir.display()
    );
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &hide,
        "sh",
    ];
    let agent = Agent::start_wrapped(&wrapper, free_port("127.0.0.1"), &["-F", "99"]);
    let url = format!(
        "http://{}/debug/pprof/profile?pid={pid}&seconds=3",
        agent.addr
    );
    let raw = pprof(&v, &["-raw", &url]);
    let log = agent.stop();
    let _ = target.kill();
    let _ = target.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        raw.contains("main.hotA"),
        "not symbolized: {raw}\nagent log: {log}"
    );
}
