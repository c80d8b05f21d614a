//! The agent shipping to a real Pyroscope receiver (root: real eBPF program). The receiver is
//! built from Pyroscope's own published push API module (`tests/receivers/pyroscope`) and
//! decodes every request with Pyroscope's generated Connect handler and Go's pprof parser;
//! what it received is checked with `go tool pprof -raw` and against the target's CPU time
//! as the kernel accounted it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gprof_testkit::receivers::Receiver;

fn receiver(name: &str) -> Option<Receiver> {
    let dir = std::env::temp_dir().join(format!("gprof-recv-{name}-{}", std::process::id()));
    gprof_testkit::require_ok(Receiver::start("pyroscope", &dir), "the Pyroscope receiver")
}

fn service(r: &serde_json::Value) -> &str {
    r["labels"]["service_name"].as_str().unwrap_or_default()
}

/// 60 s of a CPU-bound Go program in 5 s windows, with the receiver down for 30 s in the
/// middle: every window arrives (retried), with its labels; the CPU time received equals
/// what the agent says it sent, nothing is dropped, and it matches the target's own CPU time
/// within 10 %.
#[test]
fn every_window_arrives_with_its_labels_and_the_cpu_time_adds_up() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver("conserve") else {
        return;
    };
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--pyroscope",
            &recv.url(),
            "--pyroscope-tenant",
            "team-a",
            "--window",
            "5s",
            "-F",
            "99",
            "--label",
            "env=test",
            "--go-only",
        ],
    );
    let Some((mut target, pid)) = hotloop(&v, "cpu", 60) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    std::thread::sleep(Duration::from_secs(20));
    recv.down_for(Duration::from_secs(30)).unwrap();
    let cpu = wait_cpu(&mut target);
    // The last window (cut within a window and a drain), then the retries of the outage
    // (backoff up to ~32 s): wait until the agent's queue is empty and nothing new arrives.
    let exited = Instant::now();
    let deadline = exited + Duration::from_secs(90);
    let mine = |r: &serde_json::Value| service(r) == "example.com/hotloop";
    let queue = "gprof_bpf_queue_profiles{sink=\"pyroscope\"}";
    let mut last = usize::MAX;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let n = recv.requests().iter().filter(|r| mine(r)).count();
        let queued = metrics(agent.addr).get(queue).copied().unwrap_or(0.0);
        let settled = exited.elapsed() > Duration::from_secs(8) && queued == 0.0 && n == last;
        if settled || Instant::now() > deadline {
            break;
        }
        last = n;
    }
    // The metrics agree with what the receiver decoded: read between two reads of the
    // receiver's record, so a window sent meanwhile cannot make them differ. The receiver
    // records a request before it answers, and the agent counts it when the answer comes:
    // the one request in flight is left out of the lower bound.
    let total = |rs: &[serde_json::Value]| -> f64 {
        rs.iter()
            .map(|r| r["totals"][1].as_f64().unwrap() / 1e9)
            .sum()
    };
    let mut before = recv.requests();
    before.pop();
    let m = metrics(agent.addr);
    let after = recv.requests();
    let sent_profiles = m["gprof_bpf_profiles_sent_total{sink=\"pyroscope\"}"];
    let sent_cpu = m["gprof_bpf_sent_cpu_seconds_total{sink=\"pyroscope\"}"];
    assert!(
        (before.len() as f64..=after.len() as f64).contains(&sent_profiles),
        "metrics: {sent_profiles} profiles sent; the receiver decoded {}..{}",
        before.len(),
        after.len()
    );
    assert!(
        total(&before) - 1e-6 <= sent_cpu && sent_cpu <= total(&after) + 1e-6,
        "metrics: {sent_cpu} CPU s sent; the receiver decoded {}..{}",
        total(&before),
        total(&after)
    );
    agent.stop();
    let requests = recv.requests();
    let ours: Vec<&serde_json::Value> = requests.iter().filter(|r| mine(r)).collect();
    // 60 s in 5 s windows; an outage must not lose any.
    assert!(
        ours.len() >= 11,
        "{} windows of the target arrived",
        ours.len()
    );
    let mut received = 0.0;
    for r in &ours {
        assert_eq!(r["endpoint"], "push");
        assert_eq!(r["tenant"], "team-a");
        let l = &r["labels"];
        assert_eq!(l["__name__"], "process_cpu");
        assert_eq!(l["env"], "test");
        assert!(l["go_version"].as_str().unwrap().starts_with("go1."));
        assert!(
            l.get("pid").is_none(),
            "pid is a sample label, not a series label"
        );
        assert_eq!(r["period_type"], "cpu/nanoseconds");
        assert_eq!(r["sample_types"][1], "cpu/nanoseconds");
        let d = r["duration_nanos"].as_f64().unwrap() / 1e9;
        assert!((0.1..6.5).contains(&d), "window of {d} s");
        received += r["totals"][1].as_f64().unwrap() / 1e9;
    }
    // Windows are as long as asked, not rounded up to the next batch (the first one is cut
    // short by the time the eBPF program took to load).
    let median = median_window(&ours);
    assert!((4.6..5.4).contains(&median), "median window {median} s");
    // Pyroscope's own view of one window, read by go tool pprof.
    let raw = pprof(&v, &["-raw", ours[0]["file"].as_str().unwrap()]);
    assert!(raw.contains(&format!("pid:[{pid}]")), "{raw}");
    assert!(raw.contains("main.hotA"), "{raw}");
    let all = total(&requests);
    let sent = sent_cpu;
    let dropped: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gprof_bpf_dropped_cpu_seconds_total"))
        .map(|(_, v)| v)
        .sum();
    eprintln!(
        "{} windows; target {received:.2} s received, {cpu:.2} s by the kernel; \
         all services {all:.2} s received, {sent:.2} s sent by the metrics (before the last flush), {dropped} dropped; retries {}",
        ours.len(),
        m["gprof_bpf_retries_total{sink=\"pyroscope\"}"]
    );
    assert!(
        m["gprof_bpf_retries_total{sink=\"pyroscope\"}"] > 0.0,
        "the outage caused no retry"
    );
    assert_eq!(dropped, 0.0, "profiles were dropped");
    assert!(
        (received - cpu).abs() <= 0.1 * cpu,
        "received {received:.2} s of the target's CPU, the kernel says {cpu:.2} s"
    );
}

/// 429 with Retry-After is retried no sooner than asked; 400, 413 and 422 (and Connect's
/// invalid_argument) are dropped at once, counted by reason, never retried.
#[test]
fn retry_after_is_honoured_and_other_4xx_are_dropped() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver("faults") else {
        return;
    };
    let Some((mut target, _)) = hotloop(&v, "cpu", 40) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    recv.fail_next(1, 429, Some(3), Some("resource_exhausted"))
        .unwrap();
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--pyroscope",
            &recv.url(),
            "--window",
            "2s",
            "-F",
            "49",
            "--go-only",
        ],
    );
    // Wait for the 429 and the retry after it.
    let attempts = |recv: &Receiver| -> Vec<serde_json::Value> {
        std::fs::read_to_string(recv.dir.join("attempts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts(&recv).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = attempts(&recv);
    assert!(a.len() >= 2, "{a:?}");
    assert_eq!(a[0]["status"], 429);
    let t = |x: &serde_json::Value| {
        humantime::parse_rfc3339_weak(x["time"].as_str().unwrap().split('.').next().unwrap())
            .unwrap()
    };
    let gap = t(&a[1]).duration_since(t(&a[0])).unwrap_or_default();
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, Retry-After said 3 s"
    );
    // Final errors: one attempt each, then the next profile goes on.
    for (status, code) in [(400, None), (413, None), (422, Some("invalid_argument"))] {
        let before = attempts(&recv).len();
        recv.fail_next(1, status, None, code).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while attempts(&recv).len() < before + 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let a = attempts(&recv);
        assert_eq!(a[before]["status"], status, "{a:?}");
        assert_eq!(
            a[before + 1]["status"],
            0,
            "the next attempt was not a new profile: {a:?}"
        );
    }
    let m = metrics(agent.addr);
    for reason in ["http_400", "http_413", "invalid_argument"] {
        let k =
            format!("gprof_bpf_profiles_dropped_total{{sink=\"pyroscope\",reason=\"{reason}\"}}");
        assert_eq!(m.get(&k), Some(&1.0), "{k}: {m:?}");
    }
    let log = agent.stop();
    assert!(
        log.contains("http_413") && log.contains("injected 413"),
        "not logged: {log}"
    );
    let _ = target.kill();
    let _ = target.wait();
}

/// A slow receiver builds a backlog; SIGTERM delivers it within the shutdown deadline.
#[test]
fn sigterm_flushes_the_backlog_within_the_deadline() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver("flush") else {
        return;
    };
    let Some((mut target, _)) = hotloop(&v, "cpu", 60) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    recv.delay(Duration::from_millis(2000)).unwrap();
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--pyroscope",
            &recv.url(),
            "--window",
            "1s",
            "-F",
            "49",
            "--go-only",
            "--shutdown-timeout",
            "25s",
        ],
    );
    // Wait for a real backlog rather than a fixed time: how soon the first window is cut
    // depends on how long loading the eBPF program takes on this machine.
    let deadline = Instant::now() + Duration::from_secs(40);
    let queue = "gprof_bpf_queue_profiles{sink=\"pyroscope\"}";
    let mut queued = 0.0;
    while Instant::now() < deadline {
        queued = metrics(agent.addr).get(queue).copied().unwrap_or(0.0);
        if queued >= 3.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let before = target_windows(&recv);
    let t0 = Instant::now();
    agent.stop();
    let took = t0.elapsed();
    let _ = target.kill();
    let _ = target.wait();
    let after = target_windows(&recv);
    eprintln!(
        "{queued} queued at SIGTERM, {before} windows received before, {after} after; stopped in {took:?}"
    );
    let requests = recv.requests();
    let ours: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| service(r) == "example.com/hotloop")
        .collect();
    let median = median_window(&ours);
    assert!((0.9..1.2).contains(&median), "median window {median} s");
    assert!(
        queued >= 3.0,
        "no backlog built up in 40 s ({queued} queued)"
    );
    assert!(took < Duration::from_secs(25), "stopping took {took:?}");
    // Everything queued at SIGTERM arrives (the window cut at SIGTERM may add one more).
    assert!(
        after - before >= queued as usize,
        "{queued} queued at SIGTERM, {} delivered after it",
        after - before
    );
}

/// The median duration of windows, in seconds.
fn median_window(rs: &[&serde_json::Value]) -> f64 {
    let mut d: Vec<f64> = rs
        .iter()
        .map(|r| r["duration_nanos"].as_f64().unwrap() / 1e9)
        .collect();
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

fn target_windows(recv: &Receiver) -> usize {
    recv.requests()
        .iter()
        .filter(|r| service(r) == "example.com/hotloop")
        .count()
}

/// A receiver slower than the windows come: the queue stays within its bound (the oldest
/// dropped and counted as queue_full, with the CPU time they stood for), and the agent's
/// memory does not grow with the backlog it could not send.
#[test]
fn a_slow_receiver_meets_the_queue_bound() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver("slow") else {
        return;
    };
    let Some((mut target, _)) = hotloop(&v, "cpu", 60) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    recv.delay(Duration::from_millis(4000)).unwrap();
    let dir = std::env::temp_dir().join(format!("gprof-agent-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("agent.toml");
    std::fs::write(
        &conf,
        format!(
            "frequency_hz = 49\nwindow = \"1s\"\n\n[limits]\ncpu_percent = 0.0\n\n\
             [select]\ngo_only = true\n\n\
             [[pyroscope]]\nurl = \"{}\"\n[pyroscope.queue]\nmax_profiles = 3\n",
            recv.url()
        ),
    )
    .unwrap();
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &["--config", conf.to_str().unwrap()],
    );
    let queue = "gprof_bpf_queue_profiles{sink=\"pyroscope\"}";
    let full = "gprof_bpf_profiles_dropped_total{sink=\"pyroscope\",reason=\"queue_full\"}";
    let (mut highest, mut rss) = (0.0f64, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dropped = 0.0;
    while Instant::now() < deadline {
        let m = metrics(agent.addr);
        highest = highest.max(m.get(queue).copied().unwrap_or(0.0));
        dropped = m.get(full).copied().unwrap_or(0.0);
        rss.push(m["process_resident_memory_bytes"] / (1 << 20) as f64);
        std::thread::sleep(Duration::from_millis(500));
    }
    let dropped_cpu = metrics(agent.addr)
        .get("gprof_bpf_dropped_cpu_seconds_total{sink=\"pyroscope\",reason=\"queue_full\"}")
        .copied()
        .unwrap_or(0.0);
    let _ = target.kill();
    let _ = target.wait();
    let log = agent.stop();
    eprintln!(
        "queue at most {highest}, {dropped} dropped as queue_full ({dropped_cpu:.2} CPU s), RSS MiB {rss:?}"
    );
    assert!(
        highest <= 3.0,
        "the queue held {highest} profiles over its bound of 3"
    );
    // ~1 window a second against one delivery every 4 s: most are dropped, and counted.
    assert!(
        dropped >= 5.0,
        "{dropped} dropped as queue_full; log: {log}"
    );
    assert!(
        dropped_cpu > 0.0,
        "the dropped profiles' CPU time is not counted"
    );
    // Memory: the second half of the run no higher than the first half's peak plus a margin
    // (a backlog kept in memory would grow by a profile a second).
    let half = rss.len() / 2;
    let first = rss[..half].iter().copied().fold(0.0, f64::max);
    let second = rss[half..].iter().copied().fold(0.0, f64::max);
    assert!(
        second <= first + 8.0,
        "RSS grew from {first:.1} MiB to {second:.1} MiB with a bounded queue"
    );
}
