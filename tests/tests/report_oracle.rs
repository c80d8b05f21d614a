//! `go tool pprof` as the oracle of gprof-bpf's text reports and pprof writer.
//!
//! For two Go toolchains, the `pprofcpu` fixture writes a CPU profile with runtime/pprof; then
//! our `render_text` (`-list` for several regexes including an inlined function, a method, a
//! generic function and `-noinlines`; `-top`, also with `-nodecount`) must print exactly what
//! that toolchain's `go tool pprof` prints for the same file and options. Both search sources
//! on the same `-source_path`. Also: a `-trimpath` build whose sources are missing (pprof's
//! header and error, then our hot lines), or found through `source_paths`; and our
//! `encode_pprof(decode_pprof(x))` round trip, which `go tool pprof -raw` must read without a
//! word on stderr and whose `-top` must equal the original's.
//!
//! The only normalization: pprof before Go 1.20 prints `Time:` in an older layout
//! (`Jan 2, 2006 at 3:04pm (MST)`); that one line is blanked on both sides for such versions.

use anyhow::{Result, bail};
use gprof_bpf::profile::Profile;
use gprof_bpf::report::{self, TextOptions};
use regex::Regex;
use std::path::Path;
use tests::go;
use tests::pprof::{Oracle, render};

/// The toolchains of the oracle: Debian's 1.19 and the newest official one.
const VERSIONS: &[&str] = &["1.19", "1.27.3"];
/// How long the fixture burns CPU.
const RUN_FOR: &str = "2500ms";

fn read_profile(path: &Path) -> Profile {
    let bytes = std::fs::read(path).unwrap();
    report::decode_pprof(&bytes).unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()))
}

/// Serializes fixture builds: tests run in parallel and may want the same binary.
static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn record(version: &str, args: &[&str], out: &Path) -> Result<()> {
    let bin = {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        go::build("pprofcpu", version, args, &[])?
    };
    let status = std::process::Command::new(&bin)
        .arg(out)
        .arg(RUN_FOR)
        .output()?;
    if !status.status.success() {
        bail!(
            "{} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn check_version(version: &str) -> Result<usize> {
    let dir = go::target_dir().join("report-oracle").join(version);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut o = Oracle {
        version: version.to_string(),
        dir: dir.clone(),
        compared: 0,
    };
    let fixture = go::fixture_dir("pprofcpu");
    let fixture_s = path_str(&fixture).to_string();

    // --- a regular build: absolute source names ---------------------------------------------
    let pb = dir.join("cpu.pb.gz");
    record(version, &[], &pb)?;
    let pb_s = path_str(&pb).to_string();
    let profile = read_profile(&pb);

    let top = TextOptions {
        top: Some(0),
        ..Default::default()
    };
    o.same(
        "-top",
        &render(&profile, &top),
        &o.pprof_quiet(&["-top", &pb_s])?,
    );
    let top3 = TextOptions {
        top: Some(3),
        ..Default::default()
    };
    o.same(
        "-top -nodecount=3",
        &render(&profile, &top3),
        &o.pprof_quiet(&["-top", "-nodecount=3", &pb_s])?,
    );

    let top_noinl = TextOptions {
        top: Some(0),
        noinlines: true,
        ..Default::default()
    };
    o.same(
        "-top -noinlines",
        &render(&profile, &top_noinl),
        &o.pprof_quiet(&["-top", "-noinlines", &pb_s])?,
    );

    let lists: &[(&str, bool)] = &[
        (r"main\.hashLoop", false),
        (r"main\.mix", false), // inlined everywhere: its own block, flat only there
        (r"main\.\(\*worker\)\.step", false), // a method
        (r"sumSquares", false), // a generic function
        (r"^main\.", false),
        (r"^main\.", true), // -noinlines: mix folded into its callers
        (r"hashLoop|step", true),
    ];
    for &(re, noinlines) in lists {
        o.same_list("", &profile, &pb, re, noinlines, &fixture)?;
    }
    // Without -source_path on either side (absolute names, opened as they are).
    let opts = TextOptions {
        list: Some(Regex::new(r"main\.mix")?),
        ..Default::default()
    };
    let ours = render(&profile, &opts);
    o.same(
        "-list 'main\\.mix' (no -source_path)",
        &ours,
        &o.pprof_quiet(&["-list", r"main\.mix", &pb_s])?,
    );
    assert!(ours.contains("func mix(x uint64) uint64 {"), "{ours}");

    // --- the round trip through our writer ---------------------------------------------------
    let ours_pb = dir.join("roundtrip.pb.gz");
    std::fs::write(&ours_pb, report::encode_pprof(&profile)?)?;
    let ours_pb_s = path_str(&ours_pb).to_string();
    let raw = o.pprof_quiet(&["-raw", &ours_pb_s])?;
    assert!(
        raw.contains("Samples:") && raw.contains("main.mix"),
        "{raw}"
    );
    println!(
        "go {version} -raw reads our encode_pprof(decode_pprof(x)) without warnings ({} lines)",
        raw.lines().count()
    );
    let their_top = o.pprof_quiet(&["-top", &pb_s])?;
    let their_top_rt = o.pprof_quiet(&["-top", &ours_pb_s])?;
    assert_eq!(
        their_top_rt, their_top,
        "go {version}: -top of the round trip differs"
    );
    println!("go {version} -top of the round trip: identical to -top of the runtime/pprof file");
    let back = read_profile(&ours_pb);
    o.same(
        "-top (round trip, ours)",
        &render(&back, &top),
        &their_top_rt,
    );
    let mix = TextOptions {
        list: Some(Regex::new(r"mix|step")?),
        ..Default::default()
    };
    o.same(
        "-list 'mix|step' (round trip)",
        &render(&back, &mix),
        &o.pprof_quiet(&["-list", "mix|step", &ours_pb_s])?,
    );

    // --- a -trimpath build: relative names ----------------------------------------------------
    let tpb = dir.join("cpu-trimpath.pb.gz");
    record(version, &["-trimpath"], &tpb)?;
    let tpb_s = path_str(&tpb).to_string();
    let tprofile = read_profile(&tpb);
    assert!(
        tprofile
            .functions
            .iter()
            .any(|f| f.filename == "example.com/pprofcpu/main.go"),
        "expected a trimmed source name"
    );

    // Missing sources: pprof prints the headers and an error; we print the same, then the hot
    // lines without their text.
    let empty = dir.join("no-sources");
    std::fs::create_dir_all(&empty)?;
    let empty_s = path_str(&empty).to_string();
    let opts = TextOptions {
        list: Some(Regex::new(r"main\.hashLoop")?),
        source_paths: vec![empty.clone()],
        ..Default::default()
    };
    let ours = render(&tprofile, &opts);
    let theirs = o.pprof_quiet(&["-list", r"main\.hashLoop", "-source_path", &empty_s, &tpb_s])?;
    assert!(
        theirs.contains(" Error: could not find file example.com/pprofcpu/main.go on path "),
        "{theirs}"
    );
    let hot_row = Regex::new(r"^ {0,9}\S+ {1,10}\S+ +\d+:$")?;
    let (rows, rest): (Vec<&str>, Vec<&str>) = ours.lines().partition(|l| hot_row.is_match(l));
    assert!(
        !rows.is_empty(),
        "no hot lines printed for the missing source:\n{ours}"
    );
    o.same(
        "-list 'main\\.hashLoop' (source missing; our hot rows removed)",
        &(rest.join("\n") + "\n"),
        &theirs,
    );
    println!(
        "go {version} missing source: we also printed {} hot lines: {rows:?}",
        rows.len()
    );

    // Sources found through -source_path: a tree holding `example.com/pprofcpu/main.go`.
    let tree = dir.join("src-tree");
    std::fs::create_dir_all(tree.join("example.com/pprofcpu"))?;
    std::fs::copy(
        fixture.join("main.go"),
        tree.join("example.com/pprofcpu/main.go"),
    )?;
    let tree_s = path_str(&tree).to_string();
    let hash_or_mix = Regex::new(r"main\.(hashLoop|mix)")?;
    for (what, src, src_s) in [
        ("a GOPATH-like tree", &tree, &tree_s),
        ("the module directory", &fixture, &fixture_s),
    ] {
        let opts = TextOptions {
            list: Some(hash_or_mix.clone()),
            source_paths: vec![src.clone()],
            ..Default::default()
        };
        let ours = render(&tprofile, &opts);
        let theirs = o.pprof_quiet(&[
            "-list",
            r"main\.(hashLoop|mix)",
            "-source_path",
            src_s,
            &tpb_s,
        ])?;
        assert!(ours.contains("func hashLoop(n int) uint64 {"), "{ours}");
        o.same(
            &format!("-trimpath -list 'main\\.(hashLoop|mix)' (sources in {what})"),
            &ours,
            &theirs,
        );
    }

    // Standard-library sources of a -trimpath build (`runtime/proc.go`): among the given
    // GOROOTs we look in the one of the Go version a profile comment names (gprof-bpf records
    // `<binary>: go1.x.y`), pprof must be given that GOROOT's src as -source_path.
    let mut commented = tprofile.clone();
    commented.comments.push(format!("pprofcpu: go{version}"));
    let goroot_src = go::goroot(version).expect("installed").join("src");
    let goroot_src_s = path_str(&goroot_src).to_string();
    let opts = TextOptions {
        list: Some(Regex::new(r"^runtime\.main$")?),
        source_paths: vec![empty.clone()],
        // Every installed GOROOT (`--goroot`): the profile's version must pick the right one.
        goroots: go::MATRIX_VERSIONS
            .iter()
            .filter_map(|v| go::goroot(v))
            .collect(),
        ..Default::default()
    };
    let ours = render(&commented, &opts);
    let theirs = o.pprof_quiet(&[
        "-list",
        r"^runtime\.main$",
        "-source_path",
        &goroot_src_s,
        &tpb_s,
    ])?;
    assert!(
        ours.contains("ROUTINE ======================== runtime.main in runtime/proc.go"),
        "{ours}"
    );
    o.same(
        "-trimpath -list '^runtime\\.main$' (ours: GOROOT from the profile's Go version)",
        &ours,
        &theirs,
    );

    // -trim_path on both sides (the relative rest is found under an ancestor of the source
    // path).
    let opts = TextOptions {
        list: Some(Regex::new(r"main\.hashLoop")?),
        source_paths: vec![fixture.clone()],
        trim_paths: vec!["example.com".into()],
        ..Default::default()
    };
    let theirs = o.pprof_quiet(&[
        "-list",
        r"main\.hashLoop",
        "-source_path",
        &fixture_s,
        "-trim_path",
        "example.com",
        &tpb_s,
    ])?;
    o.same(
        "-trimpath -list 'main\\.hashLoop' -trim_path example.com",
        &render(&tprofile, &opts),
        &theirs,
    );

    // Beyond pprof: a flat directory holding `main.go` is found by path suffix.
    let flat = dir.join("flat");
    std::fs::create_dir_all(&flat)?;
    std::fs::copy(fixture.join("main.go"), flat.join("main.go"))?;
    let opts = TextOptions {
        list: Some(Regex::new(r"main\.hashLoop")?),
        source_paths: vec![flat.clone()],
        ..Default::default()
    };
    let ours = render(&tprofile, &opts);
    assert!(
        ours.contains("func hashLoop(n int) uint64 {") && !ours.contains("Error"),
        "{ours}"
    );
    println!(
        "go {version} -trimpath listing found in a flat source directory by path suffix (beyond pprof)"
    );
    Ok(o.compared)
}

#[test]
fn text_reports_match_go_tool_pprof() {
    let mut ran = 0;
    for v in go::installed(VERSIONS) {
        let n = check_version(v).unwrap_or_else(|e| panic!("go {v}: {e:#}"));
        println!("go {v}: {n} reports identical to go tool pprof");
        ran += 1;
    }
    assert!(ran > 0, "no Go toolchain installed: run scripts/setup.sh");
}

/// A synthetic profile shaped to exercise what runtime/pprof's rarely shows: dropped nodes
/// (`Dropped N nodes`), a partially inlined function, unsymbolized frames (`[app]`,
/// `<unknown>`), sample labels, comments, a zero sample and a 99 Hz period.
fn synthetic_profile() -> Profile {
    use gprof_bpf::profile::{
        Function, Label, LabelValue, Line, Location, Mapping, ProfileBuilder, Sample,
    };
    use std::time::{Duration, SystemTime};
    let file = go::fixture_dir("pprofcpu")
        .join("main.go")
        .to_string_lossy()
        .into_owned();
    let mut p = Profile::new_cpu(99, SystemTime::now());
    p.duration = Duration::from_millis(12_345);
    p.comments.push("/bin/app: go1.27.3".into());
    let mut b = ProfileBuilder::default();
    let app = b.mapping(
        &mut p,
        Mapping {
            start: 0x400000,
            limit: 0x800000,
            offset: 0,
            file: "/bin/app".into(),
            build_id: "deadbeef".into(),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        },
    );
    let mut func = |p: &mut Profile, name: &str, file: &str, start_line: i64| {
        let f = Function {
            name: name.into(),
            system_name: name.into(),
            filename: file.into(),
            start_line,
        };
        b.function(p, f)
    };
    let main = func(&mut p, "main.main", &file, 78);
    let spin = func(&mut p, "main.spin", &file, 60);
    let hash = func(&mut p, "main.hashLoop", &file, 25);
    let mix = func(&mut p, "main.mix", &file, 17);
    let step = func(&mut p, "main.(*worker).step", &file, 52);
    let tiny: Vec<u64> = (0..30)
        .map(|i| func(&mut p, &format!("main.tiny{i}"), "", 0))
        .collect();
    let mut lb = ProfileBuilder::default();
    let mut addr = 0x401000;
    let mut loc = |p: &mut Profile, mapping_id: u64, lines: &[(u64, i64)]| {
        addr += 0x10;
        let lines = lines
            .iter()
            .map(|&(function_id, line)| Line { function_id, line })
            .collect();
        lb.location(
            p,
            Location {
                mapping_id,
                address: addr,
                lines,
            },
        )
    };
    let l_main = loc(&mut p, app, &[(main, 93)]);
    let l_spin70 = loc(&mut p, app, &[(spin, 70)]);
    let l_spin72 = loc(&mut p, app, &[(spin, 72)]);
    let l_spin73 = loc(&mut p, app, &[(spin, 73)]);
    let l_hash_mix = loc(&mut p, app, &[(mix, 20), (hash, 28)]);
    let l_hash27 = loc(&mut p, app, &[(hash, 27)]);
    let l_step_mix = loc(&mut p, app, &[(mix, 18), (step, 54)]);
    let l_step55 = loc(&mut p, app, &[(step, 55)]);
    let l_mix19 = loc(&mut p, app, &[(mix, 19)]);
    let l_bare = loc(&mut p, app, &[]);
    let l_nomap = loc(&mut p, 0, &[]);
    let tiny_locs: Vec<u64> = tiny.iter().map(|&f| loc(&mut p, app, &[(f, 1)])).collect();
    let period = p.period;
    let add = |p: &mut Profile, stack: &[u64], n: i64, pid: i64| {
        let labels = vec![
            Label {
                key: "pid".into(),
                value: LabelValue::Num(pid),
            },
            Label {
                key: "tid".into(),
                value: LabelValue::Num(pid + 1),
            },
            Label {
                key: "process".into(),
                value: LabelValue::Str("app".into()),
            },
        ];
        p.samples.push(Sample {
            location_ids: stack.to_vec(),
            values: vec![n, n * period],
            labels,
        });
    };
    add(&mut p, &[l_hash_mix, l_spin70, l_main], 517, 100);
    add(&mut p, &[l_hash27, l_spin70, l_main], 33, 100);
    add(&mut p, &[l_step_mix, l_spin73, l_main], 301, 100);
    add(&mut p, &[l_step55, l_spin73, l_main], 123, 200);
    add(&mut p, &[l_mix19, l_spin72, l_main], 47, 200);
    add(&mut p, &[l_bare, l_spin72, l_main], 20, 200);
    add(&mut p, &[l_nomap, l_bare, l_main], 15, 200);
    add(&mut p, &[l_spin72, l_main], 0, 200);
    for (i, &l) in tiny_locs.iter().enumerate() {
        add(&mut p, &[l, l_spin72, l_main], 1 + (i as i64 % 2), 300);
    }
    p
}

#[test]
fn synthetic_profile_matches_go_tool_pprof() {
    let profile = synthetic_profile();
    let fixture = go::fixture_dir("pprofcpu");
    let fixture_s = path_str(&fixture).to_string();
    let mut ran = 0;
    for v in go::installed(VERSIONS) {
        let dir = go::target_dir()
            .join("report-oracle")
            .join(format!("synthetic-{v}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut o = Oracle {
            version: v.to_string(),
            dir: dir.clone(),
            compared: 0,
        };
        let pb = dir.join("synthetic.pb.gz");
        report::write_file(
            &profile,
            &pb,
            report::Format::Pprof,
            &TextOptions::default(),
        )
        .unwrap();
        let pb_s = path_str(&pb).to_string();
        let raw = o.pprof_quiet(&["-raw", &pb_s]).unwrap();
        assert!(
            raw.contains("pid:[100]") || raw.contains("pid:[200]"),
            "labels missing from -raw:\n{raw}"
        );
        println!("go {v} -raw reads the synthetic profile without warnings");

        let top = o.pprof_quiet(&["-top", &pb_s]).unwrap();
        assert!(
            top.contains("Dropped ") && top.contains("(partial-inline)") && top.contains("[app]"),
            "{top}"
        );
        o.same(
            "synthetic -top",
            &render(
                &profile,
                &TextOptions {
                    top: Some(0),
                    ..Default::default()
                },
            ),
            &top,
        );
        let top4 = o.pprof_quiet(&["-top", "-nodecount=4", &pb_s]).unwrap();
        o.same(
            "synthetic -top -nodecount=4",
            &render(
                &profile,
                &TextOptions {
                    top: Some(4),
                    ..Default::default()
                },
            ),
            &top4,
        );
        for (re, noinlines) in [
            (r"main\.(mix|hashLoop|spin)$", false),
            (r"main\.", true),
            ("tiny", false),
        ] {
            let mut args = vec!["-list", re, "-source_path", &fixture_s];
            if noinlines {
                args.push("-noinlines");
            }
            args.push(&pb_s);
            let theirs = o.pprof_quiet(&args).unwrap();
            let opts = TextOptions {
                list: Some(Regex::new(re).unwrap()),
                noinlines,
                source_paths: vec![fixture.clone()],
                ..Default::default()
            };
            let what = format!(
                "synthetic -list '{re}'{}",
                if noinlines { " -noinlines" } else { "" }
            );
            o.same(&what, &render(&profile, &opts), &theirs);
        }
        // The decoded file renders the same as the profile it was written from.
        let back = read_profile(&pb);
        o.same(
            "synthetic -top (decoded)",
            &render(
                &back,
                &TextOptions {
                    top: Some(0),
                    ..Default::default()
                },
            ),
            &top,
        );
        ran += 1;
    }
    assert!(ran > 0, "no Go toolchain installed: run scripts/setup.sh");
}

#[test]
fn flamegraph_and_folded_of_a_runtime_profile() {
    let v = go::newest().expect("a Go toolchain");
    let dir = go::target_dir()
        .join("report-oracle")
        .join(format!("flame-{v}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pb = dir.join("cpu.pb.gz");
    record(&v, &[], &pb).unwrap();
    let profile = read_profile(&pb);
    let opts = TextOptions::default();
    for name in ["cpu.folded", "cpu.svg", "cpu.txt", "copy.pb.gz"] {
        let path = dir.join(name);
        let format = report::format_from_path(&path).expect("known extension");
        report::write_file(&profile, &path, format, &opts).unwrap();
    }
    let folded = std::fs::read_to_string(dir.join("cpu.folded")).unwrap();
    let mut sum = 0u64;
    for l in folded.lines() {
        let (stack, count) = l.rsplit_once(' ').expect("stack count");
        assert!(!stack.is_empty());
        sum += count.parse::<u64>().expect("count");
    }
    let samples: i64 = profile.samples.iter().map(|s| s.values[0]).sum();
    assert_eq!(
        sum, samples as u64,
        "folded counts must sum to the sample count"
    );
    // Root first, inlined frames expanded: main.mix sits on top of its physical caller.
    assert!(
        folded
            .lines()
            .any(|l| l.contains("runtime.main;main.main;main.spin;main.hashLoop;main.mix ")),
        "{folded}"
    );
    println!("folded: {} stacks, {sum} samples", folded.lines().count());
    let svg = std::fs::read_to_string(dir.join("cpu.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("main.hashLoop") && svg.contains("main.mix"),
        "hot frames missing from the flame graph"
    );
    println!("svg: {} bytes with main.hashLoop and main.mix", svg.len());
    let txt = std::fs::read_to_string(dir.join("cpu.txt")).unwrap();
    assert!(
        txt.starts_with("Total: ") && txt.contains("ROUTINE ======================== main."),
        "{txt}"
    );
    print!("default text report:\n{txt}");
    let copy = read_profile(&dir.join("copy.pb.gz"));
    assert_eq!(copy.samples, profile.samples);
}
