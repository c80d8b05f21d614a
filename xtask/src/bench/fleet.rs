//! Part 8 — Fleet: `gprof-bpf agent` as it runs on every host, for `--fleet-seconds` (30
//! minutes by default): defaults (19 Hz, 15 s windows, CPU budget and memory cap on), shipping
//! to the Pyroscope receiver of the tests (`tests/receivers/pyroscope`, the backend's own push
//! handler), on a busy host: `spin busy` on both CPUs, a dozen long-lived Go services, and the
//! soak's churn loop (short-lived Go processes, exec storms, gcc).
//!
//! Every 10 s the agent's CPU time (utime + stime of /proc/PID/stat: its threads, dead ones
//! included) and RSS are read. Reported: CPU as % of one core over the run, RSS of the first
//! and last third (flat: last ≤ 1.1 × first), peak RSS, and what was shipped per minute per
//! profiled process (`gprof_bpf_bytes_sent_total` over the run, divided by the processes the
//! agent tracked, averaged over the samples of `gprof_bpf_processes`).

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::soak::churn;
use super::{Agent, Env, Section, machine, repro, start_busy, summarize, summary_row};

/// utime + stime of a whole process (exited threads included), and its RSS in bytes.
fn cpu_and_rss(pid: u32) -> Option<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf takes an integer and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    Some((
        Duration::from_secs_f64(ticks as f64 / hz as f64),
        rss_pages * 4096,
    ))
}

/// The agent's `/metrics` as name{labels} → value.
fn metrics(addr: &str) -> Result<std::collections::HashMap<String, f64>> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

pub fn run(env: &Env) -> Result<Section> {
    let secs = env.params.fleet_secs;
    let recv_dir = env.tmp.join("fleet-receiver");
    let recv = gprof_testkit::receivers::Receiver::start("pyroscope", &recv_dir)
        .context("the Pyroscope receiver")?;
    let listen = "127.0.0.1:7479";
    let window = if env.params.smoke { "2s" } else { "15s" };
    let busy = start_busy(env, secs + 30, 2, 8)?;
    let mut services = Vec::new();
    for _ in 0..12 {
        services.push(start_busy(env, secs + 30, 1, 4)?);
    }
    let args: Vec<String> = [
        "agent",
        "--listen",
        listen,
        "--pyroscope",
        &recv.url(),
        "--window",
        window,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let agent = Agent::spawn(&env.gprof, &args, &env.tmp.join("fleet.stdout"))?;
    let apid = agent.guard.pid();
    let up = Instant::now();
    while metrics(listen).is_err() {
        if up.elapsed() > Duration::from_secs(30) {
            bail!("the agent did not serve /metrics within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU64::new(0));
    let churner = churn(env, stop.clone(), started.clone());
    let (cpu0, _) = cpu_and_rss(apid).context("agent /proc")?;
    let t0 = Instant::now();
    let step = Duration::from_secs(if env.params.smoke { 1 } else { 10 });
    let mut rss = Vec::new();
    let mut tracked = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(step);
        let Some((_, r)) = cpu_and_rss(apid) else {
            bail!("the agent exited during the run");
        };
        rss.push(r as f64 / (1 << 20) as f64);
        if let Ok(m) = metrics(listen) {
            tracked.push(m.get("gprof_bpf_processes").copied().unwrap_or(0.0));
        }
    }
    let (cpu1, _) = cpu_and_rss(apid).context("agent /proc")?;
    let wall = t0.elapsed().as_secs_f64();
    let m = metrics(listen)?;
    stop.store(true, Ordering::Relaxed);
    let _ = churner.join();
    drop(agent);
    drop(busy);
    drop(services);
    let cpu_pct = (cpu1 - cpu0).as_secs_f64() / wall * 100.0;
    let third = (rss.len() / 3).max(1);
    let first: Vec<f64> = rss.iter().take(third).copied().collect();
    let last: Vec<f64> = rss.iter().rev().take(third).copied().collect();
    let (f, l) = (summarize(&first).median, summarize(&last).median);
    let peak = rss.iter().copied().fold(0.0, f64::max);
    let procs = if tracked.is_empty() {
        f64::NAN
    } else {
        tracked.iter().sum::<f64>() / tracked.len() as f64
    };
    let bytes = m
        .get("gprof_bpf_bytes_sent_total{sink=\"pyroscope\"}")
        .copied()
        .unwrap_or(0.0);
    let per_min_proc = bytes / (wall / 60.0) / procs.max(1.0);
    let received = recv.requests().len();
    let dropped = m
        .iter()
        .filter(|(k, _)| k.starts_with("gprof_bpf_profiles_dropped_total"))
        .fold(0.0, |a, (_, v)| a + v);
    let rate = m.get("gprof_bpf_sampling_rate_hz").copied().unwrap_or(0.0);
    let mut md = String::new();
    md.push_str(&summary_row(
        "fleet: agent CPU, % of one core (19 Hz, busy host)",
        &format!("{cpu_pct:.3} %"),
        "≤ 0.2 %",
        if cpu_pct <= 0.2 { "met" } else { "MISSED" },
    ));
    md.push_str(&summary_row(
        "fleet: agent RSS, last third / first third, peak",
        &format!("{f:.1} → {l:.1} MiB, peak {peak:.1} MiB"),
        "≤ 60 MiB, flat",
        if peak <= 60.0 && l <= 1.1 * f {
            "met"
        } else {
            "MISSED"
        },
    ));
    md.push_str(&format!(
        "## Fleet agent\n\n{}\n\n`gprof-bpf agent --pyroscope URL --window {window}` (defaults otherwise: \
         19 Hz, CPU budget 1 %, memory cap 200 MiB) for {wall:.0} s on a busy host (`spin busy` on 2 \
         threads, 12 long-lived Go services, churn: {} short-lived processes started), shipping to the \
         Pyroscope receiver of the tests.\n\n\
         | measure | value |\n|---|---|\n\
         | agent CPU, % of one core over the run | {cpu_pct:.3} % |\n\
         | sampling rate at the end (the budget may lower it) | {rate} Hz |\n\
         | RSS, median of the first / last third | {f:.1} / {l:.1} MiB |\n\
         | peak RSS (every {} s) | {peak:.1} MiB |\n\
         | processes tracked (mean) | {procs:.0} |\n\
         | bytes sent | {:.0} KiB ({per_min_proc:.0} B per minute per process) |\n\
         | profiles received / dropped | {received} / {dropped} |\n\n",
        repro("fleet", env),
        started.load(Ordering::Relaxed),
        step.as_secs(),
        bytes / 1024.0,
    ));
    md.push_str(&format!("Machine: {}\n", machine()));
    Ok(Section {
        id: "fleet",
        markdown: md,
    })
}
