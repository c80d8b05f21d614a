//! Churn under the agent (root: real eBPF program, cgroups): 240 short-lived Go processes
//! (~30 ms of CPU each, some at once) in four groups — plain, with `OTEL_SERVICE_NAME`, in a
//! systemd-like unit cgroup, in a container-like cgroup made by the test — each land in the
//! series their rules give, with the right labels, and every sample's pid is one of its group.
//! Checked in what a real Pyroscope receiver decoded, with `go tool pprof -raw`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use gprof_testkit::go;
use gprof_testkit::receivers::Receiver;

const CONTAINER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A cgroup v2 directory made for the test, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn make(root: &Path, rel: &str) -> std::io::Result<Cgroup> {
        let p = root.join(rel);
        std::fs::create_dir_all(&p)?;
        Ok(Cgroup(p))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Leaf first; the processes have exited.
        let mut p = self.0.clone();
        while std::fs::remove_dir(&p).is_ok() {
            if !p.pop() || p.ends_with("cgroup") || p.ends_with("unified") {
                break;
            }
        }
    }
}

/// Where cgroup v2 is mounted (unified, or the hybrid layout's `unified`).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
}

#[test]
fn churning_processes_land_in_their_series_with_their_labels() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(root) = cgroup2_root() else {
        gprof_testkit::skip!("no cgroup2 mount");
    };
    let Some(churn) = gprof_testkit::require_ok(
        go::build("churn", &v, &["-ldflags=-s -w"], &[]),
        "building the churn fixture",
    ) else {
        return;
    };
    let unit = Cgroup::make(&root, "gprof-churn.slice/payments.service").unwrap();
    let container = Cgroup::make(
        &root,
        &format!("gprof-churn.slice/docker-{CONTAINER}.scope"),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("gprof-recv-churn-{}", std::process::id()));
    let Some(recv) = gprof_testkit::require_ok(Receiver::start("pyroscope", &dir), "the receiver")
    else {
        return;
    };
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--pyroscope",
            &recv.url(),
            "--window",
            "5s",
            "-F",
            "99",
            "--service-from-env",
            "--go-only",
        ],
    );
    // group → pids. Each child joins its cgroup before it execs the Go program.
    let mut pids: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    let groups: [(&str, Option<&Path>, Option<&str>); 4] = [
        ("plain", None, None),
        ("env", None, Some("billing-api")),
        ("unit", Some(&unit.0), None),
        ("container", Some(&container.0), None),
    ];
    for round in 0..60 {
        let mut running = Vec::new();
        for (name, cg, env) in groups {
            let join = cg.map_or(String::new(), |c| {
                format!("echo $$ > {}/cgroup.procs && ", c.display())
            });
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("{join}exec {} child", churn.display()))
                .stdout(Stdio::null());
            if let Some(s) = env {
                cmd.env("OTEL_SERVICE_NAME", s);
            }
            let child = cmd.spawn().unwrap();
            pids.entry(name).or_default().insert(child.id());
            running.push(child);
        }
        for mut c in running {
            assert!(c.wait().unwrap().success(), "round {round}: a child failed");
        }
    }
    std::thread::sleep(Duration::from_secs(8));
    agent.stop();
    let started: usize = pids.values().map(BTreeSet::len).sum();
    assert!(started >= 200, "{started} processes");
    // Every series of the churn program, and the pids in its samples.
    let mut by_series: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for r in recv.requests() {
        let l = &r["labels"];
        let service = l["service_name"].as_str().unwrap().to_string();
        if service != "example.com/churn" && service != "billing-api" {
            continue;
        }
        let key = format!(
            "{service} unit={} container={}",
            l["systemd_unit"].as_str().unwrap_or("-"),
            l["container_id"].as_str().unwrap_or("-")
        );
        let raw = pprof(&v, &["-raw", r["file"].as_str().unwrap()]);
        let set = by_series.entry(key).or_default();
        for line in raw.lines() {
            if let Some(p) = line.trim().strip_prefix("pid:[") {
                set.insert(p.trim_end_matches(']').parse().unwrap());
            }
        }
    }
    for (k, s) in &by_series {
        eprintln!("{k}: {} pids", s.len());
    }
    let expect = [
        ("plain", "example.com/churn unit=- container=-"),
        ("env", "billing-api unit=- container=-"),
        (
            "unit",
            "example.com/churn unit=payments.service container=-",
        ),
        (
            "container",
            &format!("example.com/churn unit=- container={CONTAINER}") as &str,
        ),
    ];
    for (group, series) in expect {
        let seen = by_series
            .get(series)
            .unwrap_or_else(|| panic!("no series {series:?}: {:?}", by_series.keys()));
        let mine = &pids[group];
        let strays: Vec<_> = seen.difference(mine).collect();
        assert!(
            strays.is_empty(),
            "{series}: pids of other groups {strays:?}"
        );
        // Children of 30 ms at 99 Hz get about 3 samples: most of them are seen.
        assert!(
            seen.len() * 2 >= mine.len(),
            "{series}: {} of {} processes seen",
            seen.len(),
            mine.len()
        );
    }
    assert_eq!(
        by_series.len(),
        4,
        "unexpected series {:?}",
        by_series.keys()
    );
}
