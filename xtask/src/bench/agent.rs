//! Part 3 — Agent cost: gprof-bpf's own CPU time and memory while profiling a busy 2-CPU host
//! (`spin busy` on 2 threads) at 99 Hz, `--pid` and `--all`, with the default text report.
//!
//! Steady state: the on-CPU ns of all the agent's threads (`/proc/AGENT/task/*/schedstat`)
//! sampled every window, as % of one core per window. Whole run: the report footer's "profiler
//! CPU time X, peak RSS Y" (getrusage: includes loading, the final drains and symbolization).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    Agent, Env, Section, machine, parse_footer, proc_usage, repro, start_busy, summarize,
    summary_row,
};

struct Row {
    mode: &'static str,
    windows: Vec<f64>,
    footer: Option<(f64, f64)>,
    hwm: u64,
    wall: f64,
}

fn one(env: &Env, all: bool) -> Result<Row> {
    let p = &env.params;
    let mut busy = start_busy(env, p.agent_secs + 15, 2, 8)?;
    let mut args: Vec<String> = if all {
        vec!["--all".into()]
    } else {
        vec!["--pid".into(), busy.pid().to_string()]
    };
    args.extend([
        "-F".into(),
        "99".into(),
        "-d".into(),
        format!("{}s", p.agent_secs),
    ]);
    let mut agent = Agent::spawn(&env.gprof, &args, &env.tmp.join("agent.stdout"))?;
    agent.wait_line("gprof-bpf: sampling", Duration::from_secs(30))?;
    let apid = agent.guard.pid();
    let mut windows = Vec::new();
    let mut hwm = 0;
    let mut prev = proc_usage(apid).map(|u| u.0).unwrap_or(0);
    let mut t_prev = Instant::now();
    let n = (p.agent_secs / p.agent_window_secs)
        .saturating_sub(1)
        .max(1);
    for _ in 0..n {
        std::thread::sleep(
            Duration::from_secs(p.agent_window_secs).saturating_sub(t_prev.elapsed()),
        );
        let Some((ns, h, _)) = proc_usage(apid) else {
            break;
        };
        let now = Instant::now();
        windows.push((ns - prev) as f64 / 1e9 / (now - t_prev).as_secs_f64() * 100.0);
        hwm = hwm.max(h);
        prev = ns;
        t_prev = now;
    }
    let started = agent.started;
    let text = agent.stop(false)?;
    let wall = started.elapsed().as_secs_f64();
    let _ = busy.child().kill();
    Ok(Row {
        mode: if all { "--all" } else { "--pid" },
        windows,
        footer: parse_footer(&text),
        hwm,
        wall,
    })
}

pub fn run(env: &Env) -> Result<Section> {
    let rows = vec![one(env, false)?, one(env, true)?];
    let p = &env.params;
    let mut md = String::from("## 3. Agent cost\n\n");
    md.push_str(&format!("Ran: {}.\n\n", machine()));
    md.push_str(&format!(
        "Target: `bench/go/spin busy` on 2 goroutines (both CPUs busy; varied stacks). `gprof-bpf --pid PID` and \
         `gprof-bpf --all`, `-F 99 -d {}s`, default text report. Steady state: the agent's on-CPU time \
         (`/proc/AGENT/task/*/schedstat`) per {}-second window while recording, in % of one core. Whole run: the \
         report footer (getrusage of the agent: start-up, recording, final drains, symbolization and report) \
         divided by the recording's duration. Peak RSS: the footer (ru_maxrss), and VmHWM read while recording.\n\n",
        p.agent_secs, p.agent_window_secs
    ));
    md.push_str("| mode | steady CPU, % of one core, median | spread | whole run CPU (footer) | as % of one core | peak RSS (footer) | VmHWM while recording | reproduce |\n|---|---|---|---|---|---|---|---|\n");
    for r in &rows {
        let s = summarize(&r.windows);
        let (cpu, rss) = r.footer.unwrap_or((f64::NAN, f64::NAN));
        md.push_str(&format!(
            "| `{}` | {:.3}% | {} | {:.0} ms | {:.3}% | {:.1} MiB | {:.1} MiB | {} |\n",
            r.mode,
            s.median,
            s.spread(|v| format!("{v:.3}%")),
            cpu * 1e3,
            cpu / r.wall * 100.0,
            rss / 1048576.0,
            r.hwm as f64 / 1048576.0,
            repro("agent", env)
        ));
    }
    md.push('\n');
    let mut missed = Vec::new();
    for r in &rows {
        let s = summarize(&r.windows);
        let (cpu, rss) = r.footer.unwrap_or((f64::NAN, f64::NAN));
        let whole = cpu / r.wall * 100.0;
        let ok_cpu = s.median <= 0.5;
        md.push_str(&summary_row(
            &format!("agent CPU, `{}` 99 Hz busy host", r.mode),
            &format!(
                "{:.3}% of a core steady ({}); {:.3}% whole run",
                s.median,
                s.spread(|v| format!("{v:.3}")),
                whole
            ),
            "≤ 0.5% of one core",
            if ok_cpu && whole <= 0.5 {
                "met"
            } else if ok_cpu {
                "met steady; whole run over"
            } else {
                "**missed**"
            },
        ));
        let mib = rss.max(r.hwm as f64) / 1048576.0;
        md.push_str(&summary_row(
            &format!("agent peak RSS, `{}`", r.mode),
            &format!("{mib:.1} MiB"),
            "≤ 40 MiB",
            if mib <= 40.0 { "met" } else { "**missed**" },
        ));
        if !ok_cpu || whole > 0.5 {
            missed.push(format!(
                "`{}`: steady {:.3}% (goal 0.5%: {:+.3} points), whole run {:.3}% ({:.0} ms over {:.0} s)",
                r.mode,
                s.median,
                s.median - 0.5,
                whole,
                cpu * 1e3,
                r.wall
            ));
        }
        if mib > 40.0 {
            missed.push(format!(
                "`{}`: peak RSS {mib:.1} MiB, {:.1} MiB over 40 MiB",
                r.mode,
                mib - 40.0
            ));
        }
    }
    if !missed.is_empty() {
        md.push_str(&format!(
            "**Goal missed**: {}. Costs: see \"Findings\" at the end.\n\n",
            missed.join("; ")
        ));
    }
    md.push_str(&format!(
        "Reproduce: {} (`--agent-seconds` sets the recording length).\n",
        repro("agent", env)
    ));
    Ok(Section {
        id: "agent",
        markdown: md,
    })
}
