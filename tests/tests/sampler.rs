//! End-to-end tests of the sampler: load the real eBPF program, profile real Go processes
//! built from tests/fixtures/go/hotloop, and check the stacks against the binaries' own ELF
//! symbol tables (never against our symbolizer). They need root and skip loudly without it.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gprof_bpf::profile::{LabelValue, Profile};
use gprof_bpf::record::RecordOptions;
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

/// The tests share the CPUs; running two at once would distort the shares they measure.
static SERIAL: Mutex<()> = Mutex::new(());

fn hotloop(args: &[&str]) -> PathBuf {
    let version = tests::go::newest().expect("Go toolchain");
    tests::go::build("hotloop", &version, args, &[]).expect("build hotloop")
}

struct Target {
    child: Child,
    pid: u32,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin mode seconds` and waits for its "ready PID" line.
fn start(bin: &Path, mode: &str, seconds: f64) -> Target {
    let mut child = Command::new(bin)
        .args([mode, &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start target");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "target said {line:?}");
    let pid = child.id();
    Target { child, pid }
}

fn record(opts: RecordOptions) -> Profile {
    tests::record(opts)
}

fn options(pids: Vec<u32>, seconds: f64) -> RecordOptions {
    RecordOptions {
        pids,
        all: false,
        subprocesses: false,
        command: Vec::new(),
        frequency_hz: 99,
        duration: Some(Duration::from_secs_f64(seconds)),
        drain_interval: Duration::from_millis(500),
        ..RecordOptions::default()
    }
}

/// Function ranges [start, end) from an unstripped binary's ELF symbol table: the oracle.
struct Symtab {
    ranges: HashMap<String, (u64, u64)>,
    segments: Vec<(u64, u64, u64)>, // file offset, file size, vaddr
}

impl Symtab {
    fn read(bin: &Path) -> Symtab {
        let data = std::fs::read(bin).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let ranges = file
            .symbols()
            .filter(|s| s.size() > 0)
            .filter_map(|s| {
                Some((
                    s.name().ok()?.to_string(),
                    (s.address(), s.address() + s.size()),
                ))
            })
            .collect();
        let segments = file
            .segments()
            .map(|s| {
                let (o, n) = s.file_range();
                (o, n, s.address())
            })
            .collect();
        Symtab { ranges, segments }
    }

    fn range(&self, name: &str) -> (u64, u64) {
        *self
            .ranges
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in the symbol table"))
    }

    fn contains(&self, name: &str, link: u64) -> bool {
        let (s, e) = self.range(name);
        link >= s && link < e
    }

    /// Link-time address of a location, through its mapping and the PT_LOAD segments.
    fn link_address(&self, p: &Profile, location_id: u64) -> Option<u64> {
        let loc = p.location(location_id);
        let m = p.mapping(loc.mapping_id)?;
        let off = loc.address - m.start + m.offset;
        self.segments
            .iter()
            .find(|(o, n, _)| off >= *o && off < o + n)
            .map(|(o, _, v)| off - o + v)
    }
}

fn pid_of(s: &gprof_bpf::profile::Sample) -> Option<i64> {
    s.labels
        .iter()
        .find(|l| l.key == "pid")
        .and_then(|l| match l.value {
            LabelValue::Num(n) => Some(n),
            _ => None,
        })
}

/// Sample count per pid.
fn counts_by_pid(p: &Profile) -> HashMap<i64, i64> {
    let mut m = HashMap::new();
    for s in &p.samples {
        *m.entry(pid_of(s).unwrap_or(-1)).or_default() += s.values[0];
    }
    m
}

/// Samples whose leaf frame (frame 0) lies in `function` (by the oracle symtab).
fn leaf_in(p: &Profile, sym: &Symtab, function: &str, pid: Option<u32>) -> i64 {
    p.samples
        .iter()
        .filter(|s| pid.is_none_or(|pid| pid_of(s) == Some(pid as i64)))
        .filter(|s| {
            s.location_ids
                .first()
                .and_then(|&l| sym.link_address(p, l))
                .is_some_and(|a| sym.contains(function, a))
        })
        .map(|s| s.values[0])
        .sum()
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Sum of the sample weights (the `nanoseconds` column), seconds.
fn weight_seconds(p: &Profile) -> f64 {
    let col = p
        .sample_types
        .iter()
        .position(|t| t.unit == "nanoseconds")
        .expect("a nanoseconds column");
    p.samples.iter().map(|s| s.values[col]).sum::<i64>() as f64 / 1e9
}

fn total(p: &Profile) -> i64 {
    p.samples.iter().map(|s| s.values[0]).sum()
}

#[test]
fn cpu_bound_program_hot_functions() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let target = start(&bin, "cpu", 8.0);
    let seconds = 3.0;
    let cpu_before = cpu_seconds(target.pid);
    let wall = Instant::now();
    let p = record(options(vec![target.pid], seconds));
    let cpu = cpu_seconds(target.pid) - cpu_before;
    eprintln!("record() took {:.3}s", wall.elapsed().as_secs_f64());
    let n = total(&p);
    let a = leaf_in(&p, &sym, "main.hotA", None);
    let b = leaf_in(&p, &sym, "main.hotB", None);
    let expected = 99.0 * cpu;
    let weight = weight_seconds(&p);
    eprintln!(
        "cpu: {n} samples in {:.2}s = {:.1}/s; the target used {cpu:.2} CPU-s, so 99 Hz predicts {expected:.0} \
         samples ({:.1}% of that); weights {weight:.3} s ({:.1}% of the CPU time); hotA {a}, hotB {b}",
        p.duration.as_secs_f64(),
        n as f64 / p.duration.as_secs_f64(),
        100.0 * n as f64 / expected,
        100.0 * weight / cpu
    );
    // The weights are the measured time between firings of the CPU clock, so they add up to
    // the target's CPU time (up to the scheduler tick granularity of /proc's accounting). The
    // count does not quite: each jitter re-draw restarts the timer (~2 % fewer samples) and
    // thinning keeps firings at random. The bounds are loose on purpose: `cpu` spans all of
    // record() (load and stop included, 0.5–1.5 s more than the 3 s sampled on a loaded
    // machine), so the ratio measured 82–96 % (counts 79–97 %) under load 4–5 on 2 CPUs; it
    // says more about the window than about the weights, and does not justify tighter bounds.
    assert!(
        weight >= 0.85 * cpu && weight <= 1.15 * cpu + 0.05,
        "weights {weight:.3} s for {cpu:.2} CPU-s ({n} samples)"
    );
    assert!(
        (a + b) as f64 >= 0.9 * n as f64,
        "hot functions only {} of {n}",
        a + b
    );
    assert!(a > b, "hotA ({a}) should be hotter than hotB ({b})");
}

#[test]
fn frameless_leaf_keeps_its_callers() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let target = start(&bin, "leaf", 8.0);
    let p = record(options(vec![target.pid], 3.0));
    let mut in_leaf = 0;
    for s in &p.samples {
        let links: Vec<Option<u64>> = s
            .location_ids
            .iter()
            .map(|&l| sym.link_address(&p, l))
            .collect();
        if !links
            .first()
            .copied()
            .flatten()
            .is_some_and(|a| sym.contains("main.leaf", a))
        {
            continue;
        }
        in_leaf += s.values[0];
        let in_fn = |i: usize, f: &str| {
            links
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|a| sym.contains(f, a))
        };
        assert!(
            in_fn(1, "main.mid") && in_fn(2, "main.top"),
            "a sample in main.leaf lacks mid/top: {links:x?}"
        );
    }
    eprintln!(
        "leaf: {in_leaf} samples in main.leaf, every one with main.mid and main.top above it"
    );
    assert!(in_leaf >= 50, "only {in_leaf} samples in main.leaf");
}

#[test]
fn all_processes_sees_two_go_programs() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let t1 = start(&bin, "cpu", 8.0);
    let t2 = start(&bin, "cpu", 8.0);
    let mut opts = options(Vec::new(), 2.5);
    opts.all = true;
    let p = record(opts);
    let by_pid = counts_by_pid(&p);
    for t in [&t1, &t2] {
        let hot = leaf_in(&p, &sym, "main.hotA", Some(t.pid))
            + leaf_in(&p, &sym, "main.hotB", Some(t.pid));
        eprintln!(
            "--all: pid {} has {} samples, {hot} in hotA/hotB",
            t.pid,
            by_pid.get(&(t.pid as i64)).unwrap_or(&0)
        );
        assert!(hot >= 30, "pid {} has only {hot} hot samples", t.pid);
    }
    eprintln!("--all: {} processes sampled in total", by_pid.len());
}

#[test]
fn subprocesses_follows_a_child() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let parent = start(&bin, "spawn", 4.0);
    let mut opts = options(vec![parent.pid], 3.0);
    opts.subprocesses = true;
    let p = record(opts);
    let by_pid = counts_by_pid(&p);
    let child_hot: i64 = by_pid
        .keys()
        .filter(|&&pid| pid != parent.pid as i64)
        .map(|&pid| {
            leaf_in(&p, &sym, "main.hotA", Some(pid as u32))
                + leaf_in(&p, &sym, "main.hotB", Some(pid as u32))
        })
        .sum();
    eprintln!(
        "--subprocesses: samples by pid {by_pid:?}; child samples in hot functions: {child_hot}"
    );
    assert!(child_hot >= 40, "child not followed: {by_pid:?}");
    // The parent only sleeps and waits: a hot sample under its pid would be a child's sample
    // attributed to the wrong process.
    let parent_hot = leaf_in(&p, &sym, "main.hotA", Some(parent.pid))
        + leaf_in(&p, &sym, "main.hotB", Some(parent.pid));
    assert_eq!(
        parent_hot, 0,
        "child samples under the parent's pid: {by_pid:?}"
    );
}

#[test]
fn target_that_exits_mid_run() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let target = start(&bin, "cpu", 1.5);
    let t0 = Instant::now();
    let p = record(options(vec![target.pid], 10.0));
    let took = t0.elapsed();
    let hot = leaf_in(&p, &sym, "main.hotA", None) + leaf_in(&p, &sym, "main.hotB", None);
    // Symbolized after the process was gone, from the file opened at its first sample.
    let names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
    eprintln!(
        "exit: stopped after {took:?}, {hot} hot samples, notes {:?}",
        p.stats.as_ref().map(|s| &s.notes)
    );
    assert!(
        took < Duration::from_secs(5),
        "did not stop when the target exited"
    );
    assert!(hot >= 40, "only {hot} hot samples");
    assert!(
        names.contains(&"main.hotA"),
        "not symbolized after exit: {names:?}"
    );
}

#[test]
fn stripped_pie_target() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stripped = hotloop(&["-buildmode=pie", "-ldflags=-s -w"]);
    // Same code, symbols kept: the oracle for the stripped binary's addresses.
    let twin = hotloop(&["-buildmode=pie"]);
    let sym = Symtab::read(&twin);
    let target = start(&stripped, "cpu", 8.0);
    let p = record(options(vec![target.pid], 3.0));
    let n = total(&p);
    let a = leaf_in(&p, &sym, "main.hotA", None);
    let named_a: i64 = p
        .samples
        .iter()
        .filter(|s| {
            s.location_ids.first().is_some_and(|&l| {
                let loc = p.location(l);
                loc.lines
                    .last()
                    .is_some_and(|ln| p.function(ln.function_id).name == "main.hotA")
            })
        })
        .map(|s| s.values[0])
        .sum();
    eprintln!(
        "stripped PIE: {n} samples, {a} in hotA by the twin's symtab, {named_a} named main.hotA by us"
    );
    assert!(a as f64 >= 0.5 * n as f64, "hotA only {a} of {n}");
    assert_eq!(
        a, named_a,
        "our names disagree with the twin's symbol table"
    );
}

#[test]
fn deep_stacks_are_not_cut_at_127() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let target = start(&bin, "deep", 6.0);
    let p = record(options(vec![target.pid], 2.0));
    let deepest = p
        .samples
        .iter()
        .map(|s| s.location_ids.len())
        .max()
        .unwrap_or(0);
    let truncated = p
        .stats
        .as_ref()
        .and_then(|s| {
            s.lost
                .iter()
                .find(|(k, _)| k.contains("truncated"))
                .map(|(_, v)| *v)
        })
        .unwrap_or(0);
    eprintln!("deep: deepest stack {deepest} frames; truncated stacks reported: {truncated}");
    assert!(deepest > 127, "deepest stack only {deepest} frames");
    // 300 recursive frames exceed the walk's bound: that must be reported, not hidden.
    assert!(truncated > 0, "truncation not reported");
}

#[test]
fn spawned_command_is_profiled_from_the_start() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = hotloop(&[]);
    let sym = Symtab::read(&bin);
    let mut opts = options(Vec::new(), 30.0);
    opts.command = vec![bin.to_str().unwrap().into(), "cpu".into(), "1.5".into()];
    let t0 = Instant::now();
    let p = record(opts);
    let hot = leaf_in(&p, &sym, "main.hotA", None) + leaf_in(&p, &sym, "main.hotB", None);
    eprintln!("-- CMD: {hot} hot samples, ended after {:?}", t0.elapsed());
    assert!(hot >= 40, "only {hot} hot samples");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn non_go_process_gets_elf_symbols() {
    if !tests::require_root() {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tests::go::target_dir().join("c-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("spin.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <time.h>\n#include <unistd.h>\n\
         __attribute__((noinline)) unsigned long spin_here(unsigned long x) { for (int i = 0; i < 100000; i++) x = x * 31 + 7; return x; }\n\
         int main(int c, char **v) { time_t end = time(0) + 6; unsigned long x = 1; printf(\"ready %d\\n\", getpid()); fflush(stdout);\n\
         while (time(0) < end) x = spin_here(x); return (int)(x & 1); }\n",
    )
    .unwrap();
    let bin = dir.join("spin");
    let st = Command::new("cc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let target = start(&bin, "x", 0.0);
    let p = record(options(vec![target.pid], 2.0));
    let spin: i64 = p
        .samples
        .iter()
        .filter(|s| {
            s.location_ids.first().is_some_and(|&l| {
                p.location(l)
                    .lines
                    .iter()
                    .any(|ln| p.function(ln.function_id).name == "spin_here")
            })
        })
        .map(|s| s.values[0])
        .sum();
    // With -g, DWARF gives the file and line too.
    let with_line = p
        .functions
        .iter()
        .any(|f| f.name == "spin_here" && f.filename.ends_with("spin.c"));
    eprintln!(
        "C program: {spin} of {} samples named spin_here (DWARF file known: {with_line})",
        total(&p)
    );
    assert!(spin as f64 >= 0.8 * total(&p) as f64 && spin > 50);
    assert!(with_line, "no DWARF file for spin_here: {:?}", p.functions);
}

#[test]
fn bad_pid_is_a_clear_error() {
    if !tests::require_root() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(gprof_bpf::record::run(
            options(vec![999_999_999], 1.0),
            true,
        ))
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("no process with pid 999999999"),
        "{err:#}"
    );
}
