//! The agent exporting to the OpenTelemetry Collector's own OTLP receiver (root: real eBPF
//! program). The receiver (`tests/receivers/otlp`) embeds
//! `go.opentelemetry.io/collector/receiver/otlpreceiver` v0.165.0 and records what the
//! collector's pdata decoded: resource attributes, sample type, functions with inlined frames
//! and start lines, sample attributes, build ids, and the CPU time, checked against the
//! target's own CPU time.

mod common;

use std::time::Duration;

use common::*;
use gprof_testkit::receivers::Receiver;

fn receiver(name: &str) -> Option<Receiver> {
    let dir = std::env::temp_dir().join(format!("gprof-otlp-{name}-{}", std::process::id()));
    gprof_testkit::require_ok(Receiver::start("otlp", &dir), "the OTLP receiver")
}

#[test]
fn the_collector_decodes_every_window_with_frames_and_attributes() {
    exports_decoded_windows("http/protobuf");
}

#[test]
fn the_collector_decodes_every_window_over_grpc() {
    exports_decoded_windows("grpc");
}

fn exports_decoded_windows(protocol: &str) {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver(&format!("decode-{}", protocol.replace('/', "-"))) else {
        return;
    };
    let url = if protocol == "grpc" {
        let Some(url) = recv.grpc_url() else {
            gprof_testkit::skip!("the OTLP receiver printed no gRPC address");
        };
        url
    } else {
        recv.url()
    };
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--otlp",
            &url,
            "--otlp-protocol",
            protocol,
            "--otlp-development-version",
            "1",
            "--window",
            "3s",
            "-F",
            "99",
            "--go-only",
            "--label",
            "deployment.environment=test",
        ],
    );
    // The demo service (JSON, hashing, sorting on two goroutines): its hot paths run through
    // inlined frames, which the "cpu" mode's two loops almost never do.
    let Some((mut target, _)) = hotloop(&v, "demo", 15) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let cpu = wait_cpu(&mut target);
    std::thread::sleep(Duration::from_secs(5));
    agent.stop();
    let requests = recv.requests();
    let ours: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| r["resource"]["service.name"] == "example.com/hotloop")
        .collect();
    assert!(ours.len() >= 4, "{} windows arrived", ours.len());
    let mut received = 0.0;
    let mut inlined = 0;
    for r in &ours {
        let res = &r["resource"];
        assert!(
            res["host.name"].as_str().is_some_and(|h| !h.is_empty()),
            "{r}"
        );
        assert!(
            res["process.runtime.version"]
                .as_str()
                .unwrap()
                .starts_with("go1.")
        );
        assert_eq!(res["deployment.environment"], "test");
        assert_eq!(r["scope"], "gprof-bpf");
        assert_eq!(r["sample_type"], "cpu/nanoseconds");
        assert_eq!(r["period_type"], "cpu/nanoseconds");
        assert_eq!(r["period"], 1_000_000_000 / 99);
        let attrs: Vec<&str> = r["sample_attributes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(attrs.contains(&"process.pid"), "{attrs:?}");
        assert!(!r["build_ids"].as_array().unwrap().is_empty(), "{r}");
        assert!(
            r["start_lines"].as_u64().unwrap() > 0,
            "no Function.start_line: {r}"
        );
        inlined += r["inlined_locations"].as_u64().unwrap();
        received += r["total"].as_f64().unwrap() / 1e9;
    }
    let functions: Vec<&str> = ours
        .iter()
        .flat_map(|r| r["functions"].as_array().unwrap().iter())
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        functions.contains(&"main.hashAll") && functions.contains(&"main.sortNumbers"),
        "{functions:?}"
    );
    assert!(inlined > 0, "no location with inlined frames");
    eprintln!(
        "{protocol}: {} windows, {received:.2} s received, {cpu:.2} s by the kernel, {inlined} inlined locations",
        ours.len()
    );
    assert!(
        (received - cpu).abs() <= 0.1 * cpu,
        "received {received:.2} s of CPU, the kernel says {cpu:.2} s"
    );
}

/// The collector accepts only the development version it was built with: a configured
/// version it does not know is refused with 400, which the agent counts and does not retry.
#[test]
fn an_unsupported_development_version_is_refused_and_counted() {
    if !gprof_testkit::require_root() {
        return;
    }
    let Some(v) = newest_go() else { return };
    let Some(recv) = receiver("version") else {
        return;
    };
    let Some((mut target, _)) = hotloop(&v, "cpu", 20) else {
        gprof_testkit::skip!("hotloop did not start");
    };
    let agent = Agent::start(
        free_port("127.0.0.1"),
        &[
            "--otlp",
            &recv.url(),
            "--otlp-development-version",
            "99",
            "--window",
            "2s",
            "--go-only",
        ],
    );
    std::thread::sleep(Duration::from_secs(7));
    let m = metrics(agent.addr);
    let log = agent.stop();
    let _ = target.kill();
    let _ = target.wait();
    assert!(
        recv.requests().is_empty(),
        "the receiver took an unknown version"
    );
    let dropped = m
        .get("gprof_bpf_profiles_dropped_total{sink=\"otlp\",reason=\"http_400\"}")
        .copied()
        .unwrap_or(0.0);
    assert!(dropped >= 2.0, "{m:?}");
    assert_eq!(m["gprof_bpf_retries_total{sink=\"otlp\"}"], 0.0);
    assert!(log.contains("http_400"), "{log}");
}
