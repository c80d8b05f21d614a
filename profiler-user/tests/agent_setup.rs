//! The agent as an operator meets it before it runs: the shipped configuration checks, a bad
//! value is one line naming its key, the systemd unit passes `systemd-analyze verify`, and the
//! `.deb` holds the binary, the unit and the configuration. No root needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gprof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gprof-bpf"))
        .args(args)
        .env_remove("GPROF_BPF_CONFIG")
        .output()
        .expect("run gprof-bpf")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gprof-agent-setup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_shipped_configuration_is_valid_and_flags_override_it() {
    let conf = root().join("packaging/agent.toml");
    let out = gprof(&[
        "agent",
        "--check-config",
        conf.to_str().unwrap(),
        "--window",
        "7s",
        "--label",
        "env=prod",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("window = \"7s\""), "{stdout}");
    assert!(stdout.contains("env = \"prod\""), "{stdout}");
    assert!(stdout.contains("/var/lib/gprof-bpf/profiles"), "{stdout}");
}

#[test]
fn a_bad_value_is_one_line_that_names_its_key() {
    let d = scratch("bad");
    let f = d.join("agent.toml");
    for (text, key) in [
        (
            "[[pyroscope]]\nurl = \"http://p:4040\"\n[pyroscope.http]\ntimeout = \"soon\"\n",
            "pyroscope[0].http.timeout",
        ),
        ("frequency_hz = 0\n", "frequency_hz"),
        (
            "[select.include]\ncomm = [\"(\"]\n",
            "select.include.comm[0]",
        ),
        ("[http]\nlisten = \"0.0.0.0:7476\"\n", "http.token"),
        ("windw = \"1s\"\n", "windw"),
    ] {
        std::fs::write(&f, text).unwrap();
        let out = gprof(&["agent", "--check-config", f.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{text}: {stderr}");
        assert!(stderr.starts_with("gprof-bpf: error:"), "{stderr}");
        assert!(stderr.contains(key), "{text}: expected {key} in {stderr}");
    }
    // A secret is a reference, and its value never shows.
    let secret = d.join("token");
    std::fs::write(&secret, "hunter2\n").unwrap();
    std::fs::write(
        &f,
        format!(
            "[[pyroscope]]\nurl = \"http://p:4040\"\n[pyroscope.http]\n\
             bearer_token = {{ file = \"{}\" }}\nheaders = {{ X-Api-Key = \"sesame\" }}\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = gprof(&["agent", "--check-config", f.to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("hunter2") && !all.contains("sesame"), "{all}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(tool) = gprof_testkit::matrix::which("systemd-analyze") else {
        gprof_testkit::skip!("systemd-analyze is not installed (Debian: systemd)");
    };
    // The unit names /usr/bin/gprof-bpf, which systemd-analyze checks exists: verify a copy
    // that points at the binary under test.
    let d = scratch("unit");
    let unit = std::fs::read_to_string(root().join("packaging/gprof-bpf-agent.service")).unwrap();
    let unit = unit.replace("/usr/bin/gprof-bpf", env!("CARGO_BIN_EXE_gprof-bpf"));
    let path = d.join("gprof-bpf-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(tool)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Messages about other units of this host are not about ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("gprof-bpf")).collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_deb_installs_the_binary_the_unit_and_the_configuration() {
    let has_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_deb {
        gprof_testkit::skip!("cargo-deb is not installed (scripts/setup.sh installs it)");
    }
    let out_dir = scratch("deb");
    // --no-build: the binary under test is the one cargo already built for these tests.
    let out = Command::new("cargo")
        .current_dir(root())
        .args(["deb", "-p", "profiler-user", "--no-build", "--fast", "-o"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in [
        "./usr/bin/gprof-bpf",
        "./lib/systemd/system/gprof-bpf-agent.service",
        "./etc/gprof-bpf/agent.toml",
    ] {
        assert!(list.contains(f), "{f} not in the .deb:\n{list}");
    }
    let conffiles = Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains("/etc/gprof-bpf/agent.toml"),
        "the configuration is not a conffile"
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}
