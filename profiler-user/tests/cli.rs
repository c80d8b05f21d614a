//! The command line as a user meets it: one-line errors (never a panic), and a recording that
//! writes every output format. Recording needs root; those tests skip loudly without it.

use std::process::{Command, Output};

fn gprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gprof-bpf"))
        .args(args)
        .output()
        .expect("run gprof-bpf")
}

/// Root, or else a skip (a failure under GPROF_BPF_STRICT=1; see tests/kit).
fn is_root() -> bool {
    gprof_testkit::require_root()
}

/// A failed command: exit code 1 (not a panic's 101) and a single `gprof-bpf: error:` line.
fn assert_clean_error(out: &Output, needle: &str) {
    assert_error_line(out, 1, needle);
}

/// A command line clap refuses: exit code 2 and, like every other error, one line.
fn assert_usage_error(out: &Output, needle: &str) {
    assert_error_line(out, 2, needle);
}

fn assert_error_line(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.starts_with("gprof-bpf: error:"), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn usage_errors() {
    assert_clean_error(
        &gprof(&["--all", "--pid", "1", "-d", "1"]),
        "--all and --pid",
    );
    assert_clean_error(&gprof(&["-d", "1"]), "nothing to profile");
    // Output flags are checked before recording, not after it (when the recording is lost).
    assert_clean_error(
        &gprof(&["--pid", "1", "-d", "1", "--list", "main.(x"]),
        "--list \"main.(x\": unclosed group",
    );
    assert_clean_error(
        &gprof(&["--pid", "1", "-d", "1", "-o", "/nonexistent/cpu.pb.gz"]),
        "no directory /nonexistent",
    );
    assert_clean_error(
        &gprof(&["--pid", "1", "-d", "1", "-o", "cpu.out"]),
        "add --format",
    );
    // Values out of range are refused while parsing, before anything is loaded or computed.
    for (args, needle) in [
        (&["--pid", "1", "-d", "5x"][..], "--duration"),
        (
            &["--pid", "1", "-d", "6000000000000000h"],
            "must be between",
        ),
        (&["--pid", "1", "-d", "0"], "must be between 1ms and 30days"),
        (&["--pid", "1", "-d", "31d"], "must be between"),
        (&["--pid", "1", "-F", "0"], "--frequency"),
        (&["--pid", "1", "-F", "1000000"], "1..=100000"),
        (
            &["--pid", "1", "-F", "99999999999999999999999"],
            "--frequency",
        ),
        (
            &["--pid", "1", "--drain-interval", "1ms"],
            "--drain-interval",
        ),
        (
            &["--pid", "1", "--drain-interval", "1h"],
            "--drain-interval",
        ),
        (&["--pid", "x"], "--pid"),
        (&["--pid", "1", "--top", "x"], "--top"),
        (
            &["report", "x.pb.gz", "--goroot", "/nonexistent"],
            "not a GOROOT",
        ),
        (&["--bogus"], "unexpected argument"),
        (
            &["addr2line"],
            "required arguments were not provided: --exe <BINARY>",
        ),
        (&["completions", "tcsh"], "tcsh"),
    ] {
        assert_usage_error(&gprof(args), needle);
    }
}

#[test]
fn completions_and_man_page() {
    let out = gprof(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for word in [
        "complete",
        "gprof-bpf",
        "report",
        "addr2line",
        "--source-path",
        "--goroot",
    ] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completion script"
        );
    }
    // bash itself must accept the script.
    let bash = Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .expect("bash");
    assert!(
        bash.status.success(),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = gprof(&["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }

    let out = gprof(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    // groff is the oracle of the roff: it must render without a warning, with our sections.
    let dir = std::env::temp_dir().join(format!("gprof-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gprof-bpf.1");
    std::fs::write(&file, &page).unwrap();
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output();
    match rendered {
        Ok(r) => {
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            assert!(
                r.stderr.is_empty(),
                "groff: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            let text = Command::new("man")
                .args(["-l", "-P", "cat"])
                .arg(&file)
                .env("MANWIDTH", "100")
                .output()
                .expect("man");
            let text = String::from_utf8_lossy(&text.stdout);
            for word in [
                "NAME",
                "SYNOPSIS",
                "--frequency",
                "--goroot",
                "report",
                "addr2line",
            ] {
                assert!(
                    text.contains(word),
                    "{word} missing from the man page:\n{text}"
                );
            }
        }
        Err(e) => eprintln!("\n!!!! SKIPPED man page rendering: groff not runnable ({e}) !!!!\n"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("gprof-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pb.gz");
    std::fs::write(&junk, b"\x1f\x8b\x08\x00garbage that is not a profile").unwrap();
    assert_clean_error(
        &gprof(&["report", junk.to_str().unwrap()]),
        "junk.pb.gz: not a pprof profile: bad gzip data",
    );
    assert_clean_error(
        &gprof(&["report", "/etc/passwd"]),
        "/etc/passwd: not a pprof profile: neither gzip nor profile.proto",
    );
    assert_clean_error(
        &gprof(&["report", "/nonexistent/x.pb.gz"]),
        "reading /nonexistent/x.pb.gz",
    );
    // Not regular files: refused before reading (/dev/zero would be read without end).
    assert_clean_error(
        &gprof(&["report", "/dev/zero"]),
        "/dev/zero: not a regular file",
    );
    assert_clean_error(&gprof(&["report", "/tmp"]), "/tmp: not a regular file");
    let not_elf = dir.join("not-elf");
    std::fs::write(&not_elf, b"#!/bin/sh\necho hi\n").unwrap();
    let addr2line = |exe: &str| {
        Command::new(env!("CARGO_BIN_EXE_gprof-bpf"))
            .args(["addr2line", "-e", exe])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    assert_clean_error(&addr2line(not_elf.to_str().unwrap()), "not-elf");
    assert_clean_error(&addr2line("/dev/zero"), "/dev/zero: not a regular file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_pid_is_one_line() {
    if !is_root() {
        return;
    }
    assert_clean_error(
        &gprof(&["--pid", "999999999", "-d", "1"]),
        "no process with pid 999999999",
    );
}

#[test]
fn without_capabilities_says_which_are_missing() {
    if !is_root() {
        return;
    }
    // Drop to an unprivileged user with no capabilities, as a user who forgot sudo would be.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_gprof-bpf"))
        .args(["--pid", "1", "-d", "1"])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_BPF") && stderr.contains("CAP_PERFMON"),
        "{stderr}"
    );
}

#[test]
fn records_a_command_into_every_format() {
    if !is_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("gprof-cli-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pb = dir.join("cpu.pb.gz");
    let svg = dir.join("cpu.svg");
    let folded = dir.join("cpu.folded");
    let out = gprof(&[
        "-q",
        "-o",
        pb.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
        "-o",
        folded.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Machine-read outputs only: the footer goes to stderr.
    assert!(stderr.contains("profiler CPU time"), "{stderr}");
    let folded_text = std::fs::read_to_string(&folded).unwrap();
    let samples: u64 = folded_text
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(samples > 10, "{folded_text}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let report = gprof(&["report", pb.to_str().unwrap(), "--top", "5"]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(String::from_utf8_lossy(&report.stdout).contains("flat%"));
}

#[test]
fn ctrl_c_stops_and_prints_the_report() {
    if !is_root() {
        return;
    }
    let mut target = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_gprof-bpf"))
        .args(["--pid", &target.id().to_string(), "--top", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGINT) };
    let out = agent.wait_with_output().unwrap();
    let _ = target.kill();
    let _ = target.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("flat%") && stdout.contains("profiler CPU time"),
        "{stdout}"
    );
}

#[test]
fn idle_process_gets_a_note_not_an_empty_mystery() {
    if !is_root() {
        return;
    }
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let out = gprof(&["--pid", &target.id().to_string(), "-d", "1", "-q"]);
    let _ = target.kill();
    let _ = target.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("no samples"), "{stdout}");
}

/// `report FILE --tag` and `--by-tag` on a saved profile: two functions, each under its own
/// `worker` label (3 samples of `main.a` under worker=1, 1 of `main.b` under worker=2).
#[test]
fn report_selects_and_groups_by_label() {
    use gprof_bpf::profile::{
        Function, Label, LabelValue, Line, Location, Mapping, Profile, ProfileBuilder, Sample,
    };
    let mut p = Profile::new_cpu(100, std::time::SystemTime::now());
    let mut b = ProfileBuilder::default();
    let m = b.mapping(
        &mut p,
        Mapping {
            start: 0x400000,
            limit: 0x500000,
            file: "/bin/app".into(),
            has_functions: true,
            ..Mapping::default()
        },
    );
    let mut lb = ProfileBuilder::default();
    for (i, (name, worker, n)) in [("main.a", "1", 3), ("main.b", "2", 1)]
        .into_iter()
        .enumerate()
    {
        let f = b.function(
            &mut p,
            Function {
                name: name.into(),
                system_name: name.into(),
                filename: "main.go".into(),
                start_line: 1,
            },
        );
        let loc = lb.location(
            &mut p,
            Location {
                mapping_id: m,
                address: 0x401000 + 0x10 * i as u64,
                lines: vec![Line {
                    function_id: f,
                    line: 2,
                }],
            },
        );
        p.samples.push(Sample {
            location_ids: vec![loc],
            values: vec![n, n * 10_000_000],
            labels: vec![Label {
                key: "worker".into(),
                value: LabelValue::Str(worker.into()),
            }],
        });
    }
    let file = std::env::temp_dir().join(format!("gprof-cli-tags-{}.pb.gz", std::process::id()));
    std::fs::write(&file, gprof_bpf::report::encode_pprof(&p).unwrap()).unwrap();
    let path = file.to_str().unwrap();

    let out = gprof(&["report", path, "--top", "0", "--tag", "worker=1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("main.a") && !text.contains("main.b"),
        "{text}"
    );
    // Only worker=1's 30 ms remain.
    assert!(text.contains("of 30ms total"), "{text}");

    let out = gprof(&["report", path, "--top", "0", "--by-tag", "worker"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let one = text.find("--- worker=1 ---").expect("a worker=1 section");
    let two = text.find("--- worker=2 ---").expect("a worker=2 section");
    // Biggest first, and each section holds its own function only.
    assert!(one < two, "{text}");
    assert!(text[one..two].contains("main.a") && !text[one..two].contains("main.b"));
    assert!(text[two..].contains("main.b") && !text[two..].contains("main.a"));
    let _ = std::fs::remove_file(&file);
}
