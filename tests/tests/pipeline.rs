//! The streaming pipeline end to end (root: real eBPF program, real Go processes):
//!
//! * windows: a CPU-bound target recorded in 1 s windows; the windows add up to the
//!   one-window total and to the kernel's own sample counter, and each window is a pprof
//!   file that `go tool pprof` reads;
//! * churn: 200 short-lived Go processes exec'd by a Go parent (as `go build` runs its
//!   compiler), under `--subprocesses` and under `--all`: their samples carry Go function
//!   names, not `[unknown]` frames or raw addresses.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use gprof_bpf::profile::{LabelValue, Profile};
use gprof_bpf::record::RecordOptions;

/// The tests share the CPUs with each other's targets.
static SERIAL: Mutex<()> = Mutex::new(());

fn record(opts: RecordOptions) -> Profile {
    tests::record(opts)
}

fn fixture(name: &str) -> PathBuf {
    let version = tests::go::newest().expect("Go toolchain");
    tests::go::build(name, &version, &[], &[]).expect("build fixture")
}

fn samples(p: &Profile) -> i64 {
    p.samples.iter().map(|s| s.values[0]).sum()
}

fn lost(p: &Profile) -> u64 {
    let stats = p.stats.as_ref().expect("recording stats");
    stats
        .lost
        .iter()
        .filter(|(what, _)| what.starts_with("samples"))
        .map(|(_, n)| n)
        .sum()
}

/// Starts the hotloop fixture's CPU-bound mode for `secs` and waits until it runs.
fn start_hotloop_cpu(secs: u32) -> std::process::Child {
    let bin = fixture("hotloop");
    let mut child = Command::new(&bin)
        .args(["cpu", &secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hotloop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child
}

#[test]
fn windows_add_up_to_the_total_and_the_kernel_count() {
    if !tests::require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = start_hotloop_cpu(14);
    let dir = tests::go::target_dir().join("pipeline-windows");
    let _ = std::fs::remove_dir_all(&dir);
    let profile = record(RecordOptions {
        pids: vec![child.id()],
        frequency_hz: 99,
        duration: Some(Duration::from_secs(10)),
        drain_interval: Duration::from_millis(250),
        window: Some(Duration::from_secs(1)),
        window_dir: Some(dir.clone()),
        ..RecordOptions::default()
    });
    let _ = child.kill();
    let _ = child.wait();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        (8..=12).contains(&files.len()),
        "10 s in 1 s windows gave {} files",
        files.len()
    );
    let version = tests::go::newest().unwrap();
    let oracle = tests::pprof::Oracle {
        version,
        dir: dir.clone(),
        compared: 0,
    };
    let mut in_windows = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let w = gprof_bpf::report::decode_pprof(&bytes).expect("window decodes");
        in_windows += samples(&w);
        // go tool pprof reads every window without a complaint.
        let raw = oracle
            .pprof_quiet(&["-raw", f.to_str().unwrap()])
            .expect("go tool pprof -raw on a window");
        assert!(raw.contains("Samples:"), "{}: {raw}", f.display());
    }
    let total = samples(&profile);
    let kernel = profile.stats.as_ref().unwrap().kernel_samples;
    eprintln!(
        "windows {} files, {in_windows} samples; total {total}; kernel {kernel}; lost {}",
        files.len(),
        lost(&profile)
    );
    assert!(
        total > 300,
        "a CPU-bound target for 10 s gave {total} samples"
    );
    assert_eq!(in_windows, total, "the windows add up to the total");
    assert_eq!(
        total as u64 + lost(&profile),
        kernel,
        "every sample the kernel counted is in the profile or counted as lost"
    );
}

/// Of the samples of processes whose comm starts with `comm`: how many there are, and how
/// many have a user-space frame without a function name (`[unknown] 0x...`, `file+0x...`).
fn unnamed(p: &Profile, comm: &str) -> (i64, i64, Vec<String>) {
    let (mut all, mut bad) = (0, 0);
    let mut examples = Vec::new();
    for s in &p.samples {
        let ours = s.labels.iter().any(|l| {
            l.key == "process" && matches!(&l.value, LabelValue::Str(c) if c.starts_with(comm))
        });
        if !ours {
            continue;
        }
        all += s.values[0];
        let nameless = s.location_ids.iter().find_map(|&id| {
            let loc = p.location(id);
            loc.lines.iter().find_map(|l| {
                let name = &p.function(l.function_id).name;
                (name.starts_with("[unknown]") || name.contains("+0x")).then(|| name.clone())
            })
        });
        if let Some(name) = nameless {
            bad += s.values[0];
            if examples.len() < 5 {
                examples.push(name);
            }
        }
    }
    (all, bad, examples)
}

fn work_samples(p: &Profile) -> i64 {
    p.samples
        .iter()
        .filter(|s| {
            s.location_ids.iter().any(|&id| {
                p.location(id)
                    .lines
                    .iter()
                    .any(|l| p.function(l.function_id).name == "main.childWork")
            })
        })
        .map(|s| s.values[0])
        .sum()
}

fn check_churn(what: &str, p: &Profile) {
    let (all, bad, examples) = unnamed(p, "churn");
    let work = work_samples(p);
    eprintln!(
        "{what}: {all} samples of churn processes, {bad} with a nameless frame {examples:?}, {work} in main.childWork"
    );
    // 200 children x 30 ms of CPU at 99 Hz is about 600 samples.
    assert!(work >= 300, "{what}: only {work} samples in main.childWork");
    assert!(
        (bad as f64) <= 0.001 * all as f64,
        "{what}: {bad} of {all} samples have a nameless frame, e.g. {examples:?}"
    );
}

#[test]
fn short_lived_children_are_named_with_subprocesses() {
    if !tests::require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = fixture("churn");
    let profile = record(RecordOptions {
        command: vec![path(&bin), "parent".into(), "200".into(), "4".into()],
        subprocesses: true,
        duration: Some(Duration::from_secs(120)),
        ..RecordOptions::default()
    });
    check_churn("--subprocesses", &profile);
}

#[test]
fn short_lived_processes_are_named_with_all() {
    if !tests::require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = fixture("churn");
    // The parent starts once the recording runs and must be done before it ends.
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let out = Command::new(&bin)
            .args(["parent", "200", "4"])
            .output()
            .expect("run churn parent");
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    let profile = record(RecordOptions {
        all: true,
        duration: Some(Duration::from_secs(20)),
        ..RecordOptions::default()
    });
    let out = starter.join().unwrap();
    assert!(
        out.contains("done"),
        "the churn parent did not finish within the recording: {out}"
    );
    check_churn("--all", &profile);
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A profile as data independent of its ids and of the order of its samples: each sample's
/// values, labels and frames (address, file, build id, and every line with its function).
type Frame = (u64, String, String, Vec<(String, String, String, i64, i64)>);
type Canonical = Vec<(Vec<i64>, Vec<String>, Vec<Frame>)>;

fn canonical(p: &Profile) -> Canonical {
    let mut out: Canonical = p
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.key, l.value))
                .collect();
            labels.sort();
            let frames = s
                .location_ids
                .iter()
                .map(|&id| {
                    let loc = p.location(id);
                    let (file, build_id) = match loc.mapping_id {
                        0 => (String::new(), String::new()),
                        m => {
                            let m = &p.mappings[m as usize - 1];
                            (m.file.clone(), m.build_id.clone())
                        }
                    };
                    let lines = loc
                        .lines
                        .iter()
                        .map(|l| {
                            let f = p.function(l.function_id);
                            (
                                f.name.clone(),
                                f.system_name.clone(),
                                f.filename.clone(),
                                f.start_line,
                                l.line,
                            )
                        })
                        .collect();
                    (loc.address, file, build_id, lines)
                })
                .collect();
            (s.values.clone(), labels, frames)
        })
        .collect();
    out.sort();
    out
}

/// A recording with `--capture`, replayed without the kernel or /proc: the same samples,
/// stacks and names as the live run made of the same data.
#[test]
fn a_capture_replays_to_the_recorded_profile() {
    if !tests::require_root() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = start_hotloop_cpu(6);
    let dir = tests::go::target_dir().join("pipeline-capture");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hotloop.capture.gz");
    let live = record(RecordOptions {
        pids: vec![child.id()],
        duration: Some(Duration::from_secs(3)),
        drain_interval: Duration::from_millis(250),
        capture: Some(file.clone()),
        ..RecordOptions::default()
    });
    let _ = child.kill();
    let _ = child.wait();

    let started = std::time::Instant::now();
    let capture = gprof_bpf::capture::Capture::read_file(&file).expect("the capture reads");
    let replayed = gprof_bpf::capture::replay(&capture, Box::new(|p| PathBuf::from(p)), Vec::new())
        .expect("the capture replays");
    eprintln!(
        "capture {} bytes, {} records; replayed in {:?}; {} samples live",
        std::fs::metadata(&file).unwrap().len(),
        capture.records.len(),
        started.elapsed(),
        samples(&live)
    );
    assert_eq!(
        replayed.unanswered, 0,
        "the replay asked what the recording asked"
    );
    assert!(
        samples(&live) > 100,
        "3 s of a CPU-bound target: {}",
        samples(&live)
    );
    let (live, again) = (canonical(&live), canonical(&replayed.profile));
    assert_eq!(live.len(), again.len(), "distinct samples");
    for (a, b) in live.iter().zip(&again) {
        assert_eq!(a, b);
    }
}
