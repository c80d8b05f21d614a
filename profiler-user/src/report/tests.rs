//! Unit tests of the reports on small synthetic profiles. `-top` and `-list` are compared with
//! `go tool pprof` on the same profile (written as a `.pb.gz`); the larger oracle comparisons
//! are in `tests/tests/report_oracle.rs`.

use super::*;
use crate::profile::{
    Function, Label, LabelValue, Line, Location, Mapping, ProfileBuilder, RecordingStats, Sample,
};
use std::time::{Duration, UNIX_EPOCH};

const MS: i64 = 1_000_000;

/// main.main -> main.sum (line 7 calls main.f inlined, f's line 13) and main.sum line 6 hot;
/// main.main -> main.g (not inlined) -> main.f inlined at g:20.
fn sample_profile(src_dir: &Path) -> Profile {
    let mut p = Profile::new_cpu(100, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    p.duration = Duration::from_secs(3);
    let mut b = ProfileBuilder::default();
    let file = src_dir.join("main.go").to_string_lossy().into_owned();
    let m = b.mapping(
        &mut p,
        Mapping {
            start: 0x400000,
            limit: 0x500000,
            file: "/bin/app".into(),
            build_id: "abc".into(),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
            ..Default::default()
        },
    );
    let mut func = |p: &mut Profile, name: &str, start: i64| {
        b.function(
            p,
            Function {
                name: name.into(),
                system_name: name.into(),
                filename: file.clone(),
                start_line: start,
            },
        )
    };
    let main = func(&mut p, "main.main", 24);
    let sum = func(&mut p, "main.sum", 4);
    let f = func(&mut p, "main.f", 12);
    let g = func(&mut p, "main.g", 17);
    let mut lb = ProfileBuilder::default();
    let mut loc = |p: &mut Profile, addr: u64, lines: &[(u64, i64)]| {
        lb.location(
            p,
            Location {
                mapping_id: m,
                address: addr,
                lines: lines
                    .iter()
                    .map(|&(function_id, line)| Line { function_id, line })
                    .collect(),
            },
        )
    };
    let l_main_sum = loc(&mut p, 0x401000, &[(main, 25)]);
    let l_main_g = loc(&mut p, 0x401010, &[(main, 26)]);
    let l_sum6 = loc(&mut p, 0x402000, &[(sum, 6)]);
    let l_sum_f = loc(&mut p, 0x402010, &[(f, 13), (sum, 7)]);
    let l_g_f = loc(&mut p, 0x403000, &[(f, 13), (g, 20)]);
    let l_g19 = loc(&mut p, 0x403010, &[(g, 19)]);
    let mut add = |stack: Vec<u64>, n: i64| {
        p.samples.push(Sample {
            location_ids: stack,
            values: vec![n, n * 10 * MS],
            labels: vec![
                Label {
                    key: "pid".into(),
                    value: LabelValue::Num(42),
                },
                Label {
                    key: "process".into(),
                    value: LabelValue::Str("app".into()),
                },
            ],
        })
    };
    add(vec![l_sum6, l_main_sum], 83);
    add(vec![l_sum_f, l_main_sum], 37);
    add(vec![l_g_f, l_main_g], 10);
    add(vec![l_g19, l_main_g], 119);
    add(vec![l_main_sum], 1);
    p
}

const SRC: &str = "package main\n\nimport \"fmt\"\n\nfunc sum(n int) int {\n\ts := 0\n\tfor i := 0; i < n; i++ {\n\t\ts += f(i)\n\t}\n\treturn s\n}\n\nfunc f(i int) int {\n\treturn i * i\n}\n\n// g calls f.\nfunc g(n int) int {\n\tx := 0\n\tx += n * 3\n\treturn x + f(n)\n}\n\n// main runs.\nfunc main() {\n\tfmt.Println(sum(10))\n\tfmt.Println(g(3))\n}\n";

fn src_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gprof-report-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Lines shifted by one so that `func sum` is line 4 as in the profile.
    std::fs::write(
        dir.join("main.go"),
        SRC.replacen("package main\n\n", "package main\n", 1),
    )
    .unwrap();
    dir
}

fn text(p: &Profile, opts: &TextOptions) -> String {
    let mut out = Vec::new();
    render_text(p, opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// `go tool pprof ARGS PROFILE` of the newest installed toolchain, with `p` written as a
/// `.pb.gz` in `dir`: the oracle of the text reports. It runs in our working directory, its and
/// our default source search path. (stdout, stderr, success), or None after a skip when no
/// toolchain is installed.
fn go_tool_pprof(p: &Profile, dir: &Path, args: &[&str]) -> Option<(String, String, bool)> {
    let version = gprof_testkit::require_ok(gprof_testkit::go::newest(), "go tool pprof")?;
    let pb = dir.join("profile.pb.gz");
    std::fs::write(&pb, encode_pprof(p).unwrap()).unwrap();
    let out = gprof_testkit::go::go_command(&version)
        .unwrap()
        .args(["tool", "pprof"])
        .args(args)
        .arg(&pb)
        .output()
        .expect("running go tool pprof");
    std::fs::remove_file(&pb).unwrap();
    Some((
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    ))
}

/// Our `-top` equals `go tool pprof -top` on the same profile (inline marks, sums, rounding).
#[test]
fn top_table_like_pprof() {
    let dir = src_dir("top");
    let p = sample_profile(&dir);
    let ours = text(
        &p,
        &TextOptions {
            top: Some(0),
            ..Default::default()
        },
    );
    let Some((theirs, _, ok)) = go_tool_pprof(&p, &dir, &["-top"]) else {
        return;
    };
    assert!(ok);
    assert_eq!(ours, theirs);
    // The shape this profile was built to have (a sanity check that the oracle saw it too).
    assert!(ours.contains("main.f (inline)"), "{ours}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Our `-list` equals `go tool pprof -list` on the same profile and sources: inlined callee,
/// `-noinlines`, a regexp that matches nothing, a missing source file.
#[test]
fn list_like_pprof() {
    let dir = src_dir("list");
    let p = sample_profile(&dir);
    let list = |re: &str, noinlines: bool| TextOptions {
        list: Some(regex::Regex::new(re).unwrap()),
        noinlines,
        ..Default::default()
    };
    let Some((theirs, _, _)) = go_tool_pprof(&p, &dir, &["-list", "main.(sum|f)$"]) else {
        return;
    };
    let ours = text(&p, &list("main.(sum|f)$", false));
    assert_eq!(ours, theirs);
    assert!(
        ours.contains("main.f in") && ours.contains("main.sum in"),
        "{ours}"
    );

    // -noinlines folds f into its callers' call sites.
    let (theirs, _, _) = go_tool_pprof(&p, &dir, &["-list", "^main.sum$", "-noinlines"]).unwrap();
    assert_eq!(text(&p, &list("^main.sum$", true)), theirs);
    // With -noinlines main.f has no samples of its own: pprof's error, word for word.
    let (_, stderr, ok) = go_tool_pprof(&p, &dir, &["-list", "main.f", "-noinlines"]).unwrap();
    assert!(!ok);
    let err = render_text(&p, &list("main.f", true), &mut Vec::new()).unwrap_err();
    assert!(
        stderr.contains(&err.to_string()),
        "ours: {err}; pprof: {stderr}"
    );

    // A missing file: the header and pprof's error; then, beyond pprof, we print the hot lines
    // without their text (lines 6 and 7 of main.sum have samples in sample_profile).
    std::fs::remove_file(dir.join("main.go")).unwrap();
    let (theirs, _, _) = go_tool_pprof(&p, &dir, &["-list", "^main.sum$"]).unwrap();
    let ours = text(&p, &list("^main.sum$", false));
    let hot_row = regex::Regex::new(r"^ {0,9}\S+ {1,10}\S+ +\d+:$").unwrap();
    let (rows, rest): (Vec<&str>, Vec<&str>) = ours.lines().partition(|l| hot_row.is_match(l));
    assert_eq!(rest.join("\n") + "\n", theirs);
    assert!(theirs.contains(" Error: open "), "{theirs}");
    assert_eq!(
        rows.iter()
            .map(|r| r.rsplit(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["6:", "7:"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_report_has_total_top_and_listings() {
    let dir = src_dir("default");
    let p = sample_profile(&dir);
    let out = text(&p, &TextOptions::default());
    assert!(
        out.starts_with("Total: 2.50s\nShowing nodes accounting for 2.50s, 100% of 2.50s total\n"),
        "{out}"
    );
    assert!(
        out.contains("ROUTINE ======================== main.g in"),
        "{out}"
    );
    assert!(
        out.contains("ROUTINE ======================== main.sum in"),
        "{out}"
    );
    assert!(
        out.contains("ROUTINE ======================== main.f in"),
        "{out}"
    );
    assert!(!out.contains("main.main in"), "{out}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pprof_round_trip() {
    let dir = src_dir("pb");
    let mut p = sample_profile(&dir);
    p.comments.push("go1.22.10".into());
    let bytes = encode_pprof(&p).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    let q = decode_pprof(&bytes).unwrap();
    assert_eq!(q.sample_types, p.sample_types);
    assert_eq!(q.samples, p.samples);
    assert_eq!(q.locations, p.locations);
    assert_eq!(q.functions, p.functions);
    assert_eq!(q.mappings, p.mappings);
    assert_eq!(q.comments, p.comments);
    assert_eq!(q.period, p.period);
    assert_eq!(q.period_type, p.period_type);
    assert_eq!(q.duration, p.duration);
    assert_eq!(q.start_time, p.start_time);
    assert_eq!(q.default_sample_type, 1);
    // Raw (not gzipped) protos are read too.
    use prost::Message as _;
    let raw = pprof::to_proto(&p).unwrap().encode_to_vec();
    assert_eq!(decode_pprof(&raw).unwrap().samples, p.samples);
    // The stats become comments.
    p.stats = Some(RecordingStats {
        lost: vec![("samples lost: count map full".into(), 3), ("x".into(), 0)],
        agent_cpu: Duration::from_millis(120),
        agent_max_rss: 45 << 20,
        notes: vec!["pid 7 exited".into()],
        ..Default::default()
    });
    let q = decode_pprof(&encode_pprof(&p).unwrap()).unwrap();
    assert_eq!(
        q.comments[1..],
        [
            "gprof-bpf: samples lost: count map full (3); profiler CPU time 120ms, peak RSS 45MB"
                .to_string(),
            "gprof-bpf: note: pid 7 exited".to_string()
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn decoder_survives_garbage() {
    let dir = src_dir("fuzz");
    let p = sample_profile(&dir);
    std::fs::remove_dir_all(dir).unwrap();
    let gz = encode_pprof(&p).unwrap();
    use prost::Message as _;
    let raw = pprof::to_proto(&p).unwrap().encode_to_vec();
    assert!(matches!(decode_pprof(b""), Err(PprofError::Empty)));
    assert!(matches!(
        decode_pprof(&[0x1f, 0x8b]),
        Err(PprofError::Gzip(_))
    ));
    // Every truncation of the gzipped file fails cleanly (the gzip trailer is checked).
    for n in 0..gz.len() {
        assert!(decode_pprof(&gz[..n]).is_err(), "truncated to {n} bytes");
    }
    // Truncations and bit flips of the raw message never panic.
    for n in 0..raw.len() {
        let _ = decode_pprof(&raw[..n]);
    }
    let mut decoded = 0;
    let main_re = regex::Regex::new("main").unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..3000 {
        let mut m = raw.clone();
        for _ in 0..(next() % 8 + 1) {
            let i = (next() % m.len() as u64) as usize;
            m[i] ^= 1 << (next() % 8);
        }
        if let Ok(q) = decode_pprof(&m) {
            decoded += 1;
            // Whatever decodes must also render without panicking.
            for opts in [
                TextOptions {
                    top: Some(0),
                    ..Default::default()
                },
                TextOptions {
                    list: Some(main_re.clone()),
                    ..Default::default()
                },
                TextOptions::default(),
            ] {
                let _ = render_text(&q, &opts, &mut Vec::new());
            }
            folded::write_folded(&q, &mut Vec::new()).unwrap();
        }
        let len = (next() % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_pprof(&junk);
        let mut gzj = vec![0x1f, 0x8b];
        gzj.extend_from_slice(&junk);
        assert!(decode_pprof(&gzj).is_err());
    }
    assert!(
        decoded > 0,
        "no mutation decoded: the render check did not run"
    );
    // Specific malformations get their typed errors.
    let mut pb = pprof::to_proto(&p).unwrap();
    pb.sample[0].location_id.push(999);
    assert!(matches!(
        pprof::from_proto(pb),
        Err(PprofError::UnknownId {
            kind: "location",
            ..
        })
    ));
    let mut pb = pprof::to_proto(&p).unwrap();
    pb.function[0].name = 10_000;
    assert!(matches!(
        pprof::from_proto(pb),
        Err(PprofError::StringIndex { .. })
    ));
    let mut pb = pprof::to_proto(&p).unwrap();
    pb.sample[0].value.pop();
    assert!(matches!(
        pprof::from_proto(pb),
        Err(PprofError::ValueCount { .. })
    ));
    let mut pb = pprof::to_proto(&p).unwrap();
    pb.string_table[0] = b"x".to_vec();
    assert!(matches!(
        pprof::from_proto(pb),
        Err(PprofError::StringTable)
    ));
    let mut pb = pprof::to_proto(&p).unwrap();
    pb.location[1].id = pb.location[0].id;
    assert!(matches!(
        pprof::from_proto(pb),
        Err(PprofError::DuplicateId { .. })
    ));
}

#[test]
fn folded_and_svg() {
    let dir = src_dir("folded");
    let p = sample_profile(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    folded::write_folded(&p, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    // Written by hand from sample_profile's five samples (one line per stack, root first,
    // inlined frames as their own entries; sorted), not taken from our output.
    assert_eq!(
        s,
        "main.main 1\nmain.main;main.g 119\nmain.main;main.g;main.f 10\nmain.main;main.sum 83\nmain.main;main.sum;main.f 37\n"
    );
    let total: u64 = s
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        total,
        p.samples.iter().map(|s| s.values[0] as u64).sum::<u64>()
    );
    let mut svg = Vec::new();
    folded::write_flamegraph(&p, &mut svg).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("main.sum") && svg.contains("main.f"));
}

#[test]
fn formats_from_names() {
    assert_eq!(
        format_from_path(Path::new("/x/cpu.pb.gz")),
        Some(Format::Pprof)
    );
    assert_eq!(
        format_from_path(Path::new("cpu.pprof")),
        Some(Format::Pprof)
    );
    assert_eq!(format_from_path(Path::new("cpu.pb")), Some(Format::Pprof));
    assert_eq!(format_from_path(Path::new("a.SVG")), Some(Format::Svg));
    assert_eq!(
        format_from_path(Path::new("a.folded")),
        Some(Format::Folded)
    );
    assert_eq!(
        format_from_path(Path::new("a.collapsed")),
        Some(Format::Folded)
    );
    assert_eq!(format_from_path(Path::new("a.txt")), Some(Format::Text));
    assert_eq!(format_from_path(Path::new("a.gz")), None);
    assert_eq!(format_from_path(Path::new(".svg")), None);
}

#[test]
fn footer_states_losses_and_costs() {
    let mut p = Profile::new_cpu(99, UNIX_EPOCH);
    assert_eq!(footer(&p), None);
    p.stats = Some(RecordingStats {
        lost: vec![("a".into(), 0)],
        agent_cpu: Duration::from_millis(1500),
        agent_max_rss: 1536 << 10,
        notes: vec![],
        ..Default::default()
    });
    assert_eq!(
        footer(&p).unwrap(),
        "gprof-bpf: nothing lost; profiler CPU time 1.50s, peak RSS 1.50MB"
    );
}
