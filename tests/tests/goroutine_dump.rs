//! `gprof-bpf dump` against the program's own `runtime.Stack(buf, true)`.
//!
//! The `parked` fixture starts goroutines blocked on a channel, a mutex, a select, a sleep, a
//! blocking pipe read (a system call), a netpoller read and a channel under pprof labels (with
//! an inlined frame), plus three busy loops; once they have parked it writes its own
//! `runtime.Stack(all=true)` to a file and waits. The parked goroutines never move again, so
//! the dump taken afterwards must print exactly the same blocks for them: goroutine id,
//! status / wait reason, every frame (function, file:line, +offset; inlined frames expanded)
//! and `created by` (arguments aside: we print `(...)`). The busy loops must be listed as
//! running or runnable (and, with `--lock`, with the oracle's function and line). The labels
//! are the fixture's own `pprof.Labels("job", "ingest", "shard", "7")`.
//!
//! Matrix: every installed Go × {default, pie, external link, pie + external} × {unstripped,
//! `-s -w`}. Also: a process that is gone gives `Error::Exited`, and `--lock` leaves the
//! process running.

use gprof_bpf::goruntime::dump::{self, Dump, Error, Options};
use gprof_testkit::go;
use gprof_testkit::matrix::{Build, Link};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Lines of the busy loop in tests/fixtures/go/parked/main.go (`for {` … `}` of main.spin).
const SPIN_LOOP: (u32, u32) = (78, 80);

/// A running fixture, killed when dropped.
struct Fixture {
    child: Child,
    out: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(done_path(&self.out));
    }
}

/// The fixture writes `<out>`, then `<out>.done`.
fn done_path(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.done", out.display()))
}

fn start(bin: &Path, tag: &str) -> Fixture {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out =
        std::env::temp_dir().join(format!("gprof-parked-{}-{n}-{tag}.txt", std::process::id()));
    let done = done_path(&out);
    let _ = std::fs::remove_file(&done);
    let child = Command::new(bin).arg(&out).spawn().expect("start parked");
    let f = Fixture { child, out };
    let t0 = Instant::now();
    while !done.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{tag}: fixture never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    f
}

/// One goroutine block of a traceback: header and lines, arguments normalised to `(...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Block {
    goid: u64,
    status: String,
    lines: Vec<String>,
}

fn parse(text: &str) -> BTreeMap<u64, Block> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(h) = lines.next() else { continue };
        let Some(rest) = h.strip_prefix("goroutine ") else {
            continue;
        };
        let (id, rest) = rest.split_once(' ').unwrap();
        let status = rest[1..rest.find("]:").unwrap()].to_string();
        let lines = lines
            .map(|l| {
                if !l.starts_with('\t')
                    && !l.starts_with("created by")
                    && let Some(i) = l.find('(')
                    && l.ends_with(')')
                {
                    // `pkg.(*T).f(args)`: the argument list is the last parenthesis.
                    let open = l.rfind('(').unwrap_or(i);
                    format!("{}(...)", &l[..open])
                } else {
                    l.to_string()
                }
            })
            .collect();
        let goid = id.parse().unwrap();
        out.insert(
            goid,
            Block {
                goid,
                status,
                lines,
            },
        );
    }
    out
}

fn text(d: &Dump) -> String {
    let mut v = Vec::new();
    dump::write_text(d, &mut v).unwrap();
    String::from_utf8(v).unwrap()
}

fn matrix() -> Vec<Build> {
    let mut out = Vec::new();
    let versions = go::installed(go::MATRIX_VERSIONS);
    for &v in &versions {
        for link in [Link::Internal, Link::Pie, Link::External, Link::PieExternal] {
            for strip in [false, true] {
                if gprof_testkit::matrix::in_suite(&versions, v, link) {
                    out.push(Build::new(v, "amd64", link, strip, false));
                }
            }
        }
    }
    out
}

fn check(b: &Build, lock: bool) {
    let Some(bin) = gprof_testkit::require_ok(b.build("parked"), "fixture build") else {
        return;
    };
    let label = format!("{}{}", b.label(), if lock { " --lock" } else { "" });
    let f = start(&bin, &b.mode());
    let oracle_text = std::fs::read_to_string(&f.out).unwrap();
    let oracle = parse(&oracle_text);
    let d = dump::dump(
        f.child.id() as i32,
        Options {
            lock,
            system: false,
        },
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    let ours_text = text(&d);
    let ours = parse(&ours_text);
    let ctx = || format!("{label}\n--- oracle ---\n{oracle_text}\n--- dump ---\n{ours_text}");
    // The goroutine that called runtime.Stack ran on; it is the only `running` one with
    // main.main at the top.
    let caller = oracle
        .values()
        .find(|g| g.status == "running" && g.lines.first().is_some_and(|l| l == "main.main(...)"))
        .map(|g| g.goid)
        .unwrap_or_else(|| panic!("no caller in the oracle: {}", ctx()));
    let mut oracle_ids: Vec<u64> = oracle.keys().copied().filter(|&g| g != caller).collect();
    let mut our_ids: Vec<u64> = ours.keys().copied().filter(|&g| g != caller).collect();
    oracle_ids.sort();
    our_ids.sort();
    assert_eq!(our_ids, oracle_ids, "goroutine ids: {}", ctx());
    let mut parked = 0;
    let mut busy = 0;
    for (id, want) in &oracle {
        if *id == caller {
            continue;
        }
        let got = &ours[id];
        if matches!(want.status.as_str(), "running" | "runnable") {
            busy += 1;
            assert!(
                matches!(got.status.as_str(), "running" | "runnable"),
                "goroutine {id}: {} {}",
                got.status,
                ctx()
            );
            if lock {
                // Stopped: the thread's registers give its stack. Where in the loop a busy
                // goroutine is (the `for` line or its body) differs between the oracle's
                // moment and ours: the innermost line only has to be inside main.spin's loop.
                let fl = |b: &Block| -> Vec<String> {
                    b.lines
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            let l = l.split(" +0x").next().unwrap();
                            match l.rsplit_once(':') {
                                Some((file, _)) if i == 1 => file.to_string(),
                                _ => l.to_string(),
                            }
                        })
                        .collect()
                };
                assert_eq!(fl(got), fl(want), "goroutine {id} (locked): {}", ctx());
                let line = |b: &Block| -> u32 {
                    let l = b.lines[1].split(" +0x").next().unwrap();
                    l.rsplit_once(':').unwrap().1.parse().unwrap()
                };
                assert!(
                    (SPIN_LOOP.0..=SPIN_LOOP.1).contains(&line(got))
                        && (SPIN_LOOP.0..=SPIN_LOOP.1).contains(&line(want)),
                    "goroutine {id} (locked): {}",
                    ctx()
                );
            }
            continue;
        }
        parked += 1;
        // Our header may carry labels after the colon; the oracle (GODEBUG default) has none.
        let mut got = got.clone();
        assert_eq!(got.status, want.status, "goroutine {id} status: {}", ctx());
        got.lines.retain(|l| !l.is_empty());
        assert_eq!(got.lines, want.lines, "goroutine {id} frames: {}", ctx());
    }
    assert_eq!(busy, 3, "{}", ctx());
    assert_eq!(parked, 7, "{}", ctx());
    // `--json` carries the same: every parked goroutine's frames and creator, rebuilt from the
    // JSON fields, are the oracle's lines.
    let json = serde_json::to_value(&d).unwrap();
    let opt_off =
        |v: &serde_json::Value| v.as_u64().map(|o| format!(" +{o:#x}")).unwrap_or_default();
    for g in json["goroutines"].as_array().expect("goroutines") {
        let id = g["goid"].as_u64().expect("goid");
        let Some(want) = oracle.get(&id) else {
            continue;
        };
        if id == caller || matches!(want.status.as_str(), "running" | "runnable") {
            continue;
        }
        assert_eq!(g["status"], want.status.as_str(), "json goroutine {id}");
        let mut lines = Vec::new();
        for f in g["frames"].as_array().expect("frames") {
            lines.push(format!("{}(...)", f["function"].as_str().unwrap()));
            lines.push(format!(
                "\t{}:{}{}",
                f["file"].as_str().unwrap(),
                f["line"].as_u64().unwrap(),
                opt_off(&f["offset"])
            ));
        }
        let c = &g["created_by"];
        if !c.is_null() {
            let mut l = format!("created by {}", c["function"].as_str().unwrap());
            if let Some(p) = c["parent_goid"].as_u64() {
                l.push_str(&format!(" in goroutine {p}"));
            }
            lines.push(l);
            lines.push(format!(
                "\t{}:{}{}",
                c["file"].as_str().unwrap(),
                c["line"].as_u64().unwrap(),
                opt_off(&c["offset"])
            ));
        }
        let mut want_lines = want.lines.clone();
        want_lines.retain(|l| !l.is_empty());
        assert_eq!(lines, want_lines, "json goroutine {id}: {}", ctx());
    }
    // Labels: exactly the fixture's set, on the goroutine parked in main.inner only.
    let labelled: Vec<_> = d
        .goroutines
        .iter()
        .filter(|g| !g.labels.is_empty())
        .collect();
    assert_eq!(labelled.len(), 1, "{}", ctx());
    assert_eq!(
        labelled[0].labels,
        vec![
            ("job".to_string(), "ingest".to_string()),
            ("shard".to_string(), "7".to_string())
        ],
        "{}",
        ctx()
    );
    assert_eq!(
        labelled[0].frames.first().map(|f| f.function.as_str()),
        Some("main.inner"),
        "{}",
        ctx()
    );
    // Only the busy loops can change under us.
    assert!(
        d.goroutines
            .iter()
            .all(|g| !g.moved || matches!(g.status.as_str(), "running" | "runnable")),
        "{}",
        ctx()
    );
    if lock {
        // Resumed: the process runs again (not in a ptrace stop).
        let st = std::fs::read_to_string(format!("/proc/{}/status", f.child.id())).unwrap();
        let state = st.lines().find(|l| l.starts_with("State:")).unwrap();
        assert!(
            !state.contains("t (tracing stop)") && !state.contains("T ("),
            "{state}"
        );
    }
}

#[test]
fn dump_matches_runtime_stack_on_the_matrix() {
    if !gprof_testkit::require_root() {
        return;
    }
    for b in matrix() {
        check(&b, false);
    }
}

#[test]
fn dump_lock_gives_running_stacks_and_resumes() {
    if !gprof_testkit::require_root() {
        return;
    }
    for v in go::installed(&["1.19", "1.27.3"]) {
        for link in [Link::Internal, Link::PieExternal] {
            check(&Build::new(v, "amd64", link, true, false), true);
        }
    }
}

#[test]
fn a_process_that_is_gone_is_a_clear_error() {
    let Some(v) = go::installed(&["1.27.3"]).first().copied() else {
        return;
    };
    let b = Build::new(v, "amd64", Link::Internal, false, false);
    let Some(bin) = gprof_testkit::require_ok(b.build("parked"), "fixture build") else {
        return;
    };
    let mut f = start(&bin, "gone");
    let pid = f.child.id() as i32;
    f.child.kill().unwrap();
    // A zombie (killed, not yet reaped), then no process at all.
    std::thread::sleep(Duration::from_millis(100));
    let e = dump::dump(pid, Options::default()).unwrap_err();
    assert!(matches!(e, Error::Exited(p) if p == pid), "zombie: {e}");
    f.child.wait().unwrap();
    let e = dump::dump(pid, Options::default()).unwrap_err();
    assert!(matches!(e, Error::Exited(p) if p == pid), "reaped: {e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
}
