//! Reports of profiles *we recorded*: `go tool pprof` is the oracle.
//!
//! The `pprofcpu` fixture runs under gprof-bpf (spawned with `-- CMD`) while it writes its own
//! runtime/pprof profile, so one run yields both profiles of the same program. For our
//! recording: `go tool pprof -raw` reads it without a word on stderr; our `--list` (several
//! regexes, an inlined function, `--noinlines`) and `--top` are identical to pprof's on the same
//! file; `Function.start_line` of every `main.*` function is the line of its `func` keyword in
//! the source; the collapsed stacks sum to the sample count and the flamegraph shows the hot
//! function. Needs root (it loads the eBPF program); skips loudly without it.

use std::path::Path;
use std::time::Duration;

use gprof_bpf::record::{self, RecordOptions};
use gprof_bpf::report::{self, Format, TextOptions};
use tests::go;
use tests::pprof::{Oracle, render};

/// Line of `func NAME` (plain, generic or method) in the fixture's main.go: the oracle for
/// `Function.start_line`, read from the source, not from the binary.
fn func_line(source: &str, function: &str) -> Option<i64> {
    let short = function.strip_prefix("main.")?;
    let (receiver, name) = match short.rsplit_once(").") {
        Some((r, n)) => (Some(r.trim_start_matches('(').trim_start_matches('*')), n),
        None => (None, short),
    };
    let name = name.trim_end_matches("[...]");
    if name.contains('.') {
        return None; // closures (main.f.func1) have no func line of their own
    }
    source
        .lines()
        .position(|l| {
            let Some(rest) = l.strip_prefix("func ") else {
                return false;
            };
            let rest = match receiver {
                Some(r) => match rest.strip_prefix('(') {
                    Some(after) if after.contains(r) => after.split_once(") ").map_or("", |x| x.1),
                    _ => return false,
                },
                None => rest,
            };
            rest.starts_with(&format!("{name}(")) || rest.starts_with(&format!("{name}["))
        })
        .map(|i| i as i64 + 1)
}

#[test]
fn recorded_profile_reports_match_go_tool_pprof() {
    if !tests::require_root() {
        return;
    }
    let version = go::newest().expect("Go toolchain");
    let bin = go::build("pprofcpu", &version, &[], &[]).expect("build pprofcpu");
    let dir = go::target_dir().join("report-recorded");
    std::fs::create_dir_all(&dir).unwrap();
    let runtime_pb = dir.join("runtime.pb.gz");
    let ours_pb = dir.join("ours.pb.gz");

    let opts = RecordOptions {
        pids: Vec::new(),
        all: false,
        subprocesses: false,
        command: vec![
            bin.to_str().unwrap().into(),
            runtime_pb.to_str().unwrap().into(),
            "3s".into(),
        ],
        frequency_hz: 99,
        duration: Some(Duration::from_secs(30)),
        drain_interval: Duration::from_millis(500),
        ..RecordOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = rt.block_on(record::run(opts, true)).expect("recording");
    report::write_file(&recorded, &ours_pb, Format::Pprof, &TextOptions::default()).unwrap();
    let profile = report::decode_pprof(&std::fs::read(&ours_pb).unwrap()).expect("decode ours");

    let fixture = go::fixture_dir("pprofcpu");
    let pb_s = ours_pb.to_str().unwrap().to_string();
    let mut o = Oracle {
        version: version.clone(),
        dir: dir.clone(),
        compared: 0,
    };

    // pprof reads what we wrote without warnings.
    let raw = o
        .pprof_quiet(&["-raw", &pb_s])
        .expect("go tool pprof -raw on our profile");
    assert!(
        raw.contains("main.hashLoop") || raw.contains("main.mix"),
        "raw dump lacks main.*:\n{raw}"
    );

    for (re, noinlines) in [
        (r"main\.hashLoop", false),
        (r"main\.mix", false),
        (r"main\.\(\*worker\)\.step", false),
        ("sumSquares", false),
        (r"^main\.", false),
        (r"^main\.", true),
    ] {
        o.same_list("recorded: ", &profile, &ours_pb, re, noinlines, &fixture)
            .unwrap();
    }
    for (nodecount, noinlines) in [(None, false), (Some(5), false), (None, true)] {
        let ours = render(
            &profile,
            &TextOptions {
                top: Some(nodecount.unwrap_or(0)),
                noinlines,
                ..Default::default()
            },
        );
        let n = nodecount.map(|n: usize| format!("-nodecount={n}"));
        let mut args = vec!["-top"];
        if let Some(n) = &n {
            args.push(n);
        }
        if noinlines {
            args.push("-noinlines");
        }
        args.push(&pb_s);
        let theirs = o.pprof_quiet(&args).unwrap();
        o.same(
            &format!("recorded: {}", args[..args.len() - 1].join(" ")),
            &ours,
            &theirs,
        );
    }

    // Function.start_line against the source.
    let source = std::fs::read_to_string(fixture.join("main.go")).unwrap();
    let mut checked = 0;
    for f in profile
        .functions
        .iter()
        .filter(|f| f.name.starts_with("main."))
    {
        if let Some(line) = func_line(&source, &f.name) {
            assert_eq!(f.start_line, line, "start_line of {}", f.name);
            checked += 1;
        }
    }
    println!("recorded: Function.start_line equals the func line for {checked} main.* functions");
    assert!(
        checked >= 2,
        "too few functions checked: {:?}",
        profile.functions
    );

    // Collapsed stacks and flamegraph of the recording.
    let folded = dir.join("ours.folded");
    let svg = dir.join("ours.svg");
    report::write_file(&recorded, &folded, Format::Folded, &TextOptions::default()).unwrap();
    report::write_file(&recorded, &svg, Format::Svg, &TextOptions::default()).unwrap();
    let total: i64 = recorded.samples.iter().map(|s| s.values[0]).sum();
    let folded_sum: i64 = std::fs::read_to_string(&folded)
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        folded_sum, total,
        "collapsed stacks must sum to the sample count"
    );
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml") || svg_text.contains("<svg"));
    assert!(svg_text.contains("main.hashLoop") || svg_text.contains("main.mix"));
    println!(
        "recorded: {total} samples; folded sums to {folded_sum}; {} comparisons identical",
        o.compared
    );

    // The runtime's own profile of the same run renders identically too.
    assert!(
        Path::new(&runtime_pb).exists(),
        "the fixture did not write its runtime/pprof profile"
    );
    let runtime = report::decode_pprof(&std::fs::read(&runtime_pb).unwrap()).unwrap();
    let rp = runtime_pb.to_str().unwrap();
    let ours = render(
        &runtime,
        &TextOptions {
            top: Some(0),
            ..Default::default()
        },
    );
    let theirs = o.pprof_quiet(&["-top", rp]).unwrap();
    o.same(
        "runtime/pprof profile of the same run: -top",
        &ours,
        &theirs,
    );
}
