//! Grafana Pyroscope: the Connect push API (`POST /push.v1.PusherService/Push`, what Alloy's
//! `pyroscope.write` uses), or the legacy `POST /ingest?format=pprof` for old servers and
//! proxies. One request per series and window, the pprof gzipped inside.

use std::time::{Duration, Instant, UNIX_EPOCH};

use prost::Message;

use super::http::HttpOptions;
use super::queue::{NetworkSink, Outcome, Payload, QueueOptions, Transport};
use super::{SeriesProfile, SinkError};
use crate::profile::Profile;

/// `push.v1.PushRequest` and friends (grafana/pyroscope `api/push/v1/push.proto`,
/// `api/types/v1/types.proto`): the fields we send.
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub series: Vec<RawProfileSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RawProfileSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<LabelPair>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<RawSample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RawSample {
        #[prost(bytes = "vec", tag = "1")]
        pub raw_profile: Vec<u8>,
        #[prost(string, tag = "2")]
        pub id: String,
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum PyroscopeApi {
    /// `push.v1.PusherService/Push` (Connect, protobuf).
    #[default]
    Push,
    /// `/ingest?format=pprof`.
    Ingest,
}

#[derive(Clone, Debug)]
pub struct PyroscopeOptions {
    /// The server's base URL, e.g. `http://pyroscope:4040`.
    pub url: String,
    pub api: PyroscopeApi,
    /// `X-Scope-OrgID`.
    pub tenant: Option<String>,
    pub http: HttpOptions,
    pub queue: QueueOptions,
    pub frequency_hz: u64,
}

/// A Pyroscope sink: a [`NetworkSink`] with the push (or ingest) transport.
pub fn sink(name: &str, o: PyroscopeOptions) -> Result<NetworkSink, SinkError> {
    let transport = PushTransport {
        client: o.http.client()?,
        o: o.clone(),
    };
    Ok(NetworkSink::new(name, o.queue, Box::new(transport), encode))
}

/// Gzipped pprof, split within Pyroscope's limits.
fn encode(p: &SeriesProfile<'_>) -> Result<Vec<Payload>, SinkError> {
    within_limits(p.profile)?
        .iter()
        .map(|part| {
            Ok(Payload {
                seq: p.seq,
                series: p.series.clone(),
                pprof: crate::report::encode_pprof(part)
                    .map_err(|e| SinkError::Encode(e.to_string()))?,
                start: part.start_time,
                duration: part.duration,
                weight_ns: part.total_weight(),
                queued: Instant::now(),
            })
        })
        .collect()
}

/// Pyroscope's default limits per profile (`validation.max-profile-stacktrace-samples`,
/// `validation.max-profile-size-bytes`, uncompressed) and per series
/// (`validation.max-label-names-per-series`).
const MAX_SAMPLES: usize = 16_000;
const MAX_BYTES: usize = 4 << 20;
const MAX_LABELS: usize = 30;

/// The profile, or parts of it (each with the whole dictionary and some of the samples) that
/// each stay within the limits: a series' window is then several profiles of the same time
/// range, which Pyroscope adds up.
fn within_limits(p: &Profile) -> Result<Vec<Profile>, SinkError> {
    let size = crate::report::encoded_size(p).map_err(|e| SinkError::Encode(e.to_string()))?;
    // A tenth of headroom: the dictionary is repeated in every part.
    let by_size = (size * 10 / 9).div_ceil(MAX_BYTES);
    let parts = p.samples.len().div_ceil(MAX_SAMPLES).max(by_size).max(1);
    if parts == 1 {
        return Ok(vec![p.clone()]);
    }
    let chunk = p.samples.len().div_ceil(parts);
    Ok(p.samples
        .chunks(chunk.max(1))
        .map(|samples| {
            let mut part = p.clone();
            part.samples = samples.to_vec();
            part
        })
        .collect())
}

struct PushTransport {
    client: reqwest::blocking::Client,
    o: PyroscopeOptions,
}

/// The series labels Pyroscope wants: `__name__`, `service_name`, then ours, sorted.
fn labels(p: &Payload) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = vec![
        ("__name__".into(), "process_cpu".into()),
        ("service_name".into(), p.series.service.clone()),
    ];
    l.extend(
        p.series
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "service_name" && !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    l.sort();
    // Beyond the limit Pyroscope rejects the series: keep the two it requires and the first
    // others by name.
    if l.len() > MAX_LABELS {
        let mut kept = 2;
        l.retain(|(k, _)| {
            let required = k == "__name__" || k == "service_name";
            let keep = required || kept < MAX_LABELS;
            if keep && !required {
                kept += 1;
            }
            keep
        });
    }
    l
}

/// A Connect error body: `{"code": "...", "message": "..."}`.
#[derive(serde::Deserialize)]
struct ConnectError {
    code: Option<String>,
    message: Option<String>,
}

/// Connect codes worth retrying (as Alloy's pyroscope.write).
const RETRY_CODES: [&str; 7] = [
    "deadline_exceeded",
    "unknown",
    "resource_exhausted",
    "internal",
    "unavailable",
    "data_loss",
    "aborted",
];

fn outcome(r: reqwest::blocking::Response) -> Outcome {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(super::queue::parse_retry_after);
    if (200..300).contains(&status) {
        return Outcome::Sent;
    }
    let body = r.text().unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ConnectError>(&body) {
        Ok(e) => (e.code, e.message.unwrap_or_default()),
        Err(_) => (None, body.chars().take(500).collect()),
    };
    match code {
        // The Connect code decides; the status only when there is none (a proxy answered).
        Some(c) if RETRY_CODES.contains(&c.as_str()) || status == 429 => Outcome::Retry {
            reason: c,
            after: retry_after,
        },
        Some(c) => Outcome::Reject { reason: c, message },
        None => Outcome::of_status(status, retry_after, message),
    }
}

/// A label value as the `/ingest` labelset syntax allows it (no escaping exists).
fn ingest_value(v: &str) -> String {
    v.replace([',', '{', '}', '='], "_")
}

impl Transport for PushTransport {
    fn send(&mut self, p: &Payload) -> Outcome {
        let base = self.o.url.trim_end_matches('/');
        let req = match self.o.api {
            PyroscopeApi::Push => {
                let body = wire::PushRequest {
                    series: vec![wire::RawProfileSeries {
                        labels: labels(p)
                            .into_iter()
                            .map(|(name, value)| wire::LabelPair { name, value })
                            .collect(),
                        samples: vec![wire::RawSample {
                            raw_profile: p.pprof.clone(),
                            id: String::new(),
                        }],
                    }],
                }
                .encode_to_vec();
                self.client
                    .post(format!("{base}/push.v1.PusherService/Push"))
                    .header("Content-Type", "application/proto")
                    .header("Connect-Protocol-Version", "1")
                    .body(body)
            }
            PyroscopeApi::Ingest => {
                let from = p.start.duration_since(UNIX_EPOCH).unwrap_or_default();
                let until = from + p.duration;
                let l: Vec<String> = labels(p)
                    .into_iter()
                    .filter(|(k, _)| k != "__name__" && k != "service_name")
                    .map(|(k, v)| format!("{k}={}", ingest_value(&v)))
                    .collect();
                let name = format!("{}{{{}}}", ingest_value(&p.series.service), l.join(","));
                self.client
                    .post(format!("{base}/ingest"))
                    .query(&[
                        ("name", name),
                        ("from", from.as_nanos().to_string()),
                        ("until", until.as_nanos().to_string()),
                        ("format", "pprof".into()),
                        ("spyName", "gprof-bpf".into()),
                        ("sampleRate", self.o.frequency_hz.to_string()),
                    ])
                    .header("Content-Type", "application/octet-stream")
                    .body(p.pprof.clone())
            }
        };
        let mut req = self.o.http.apply(req);
        if let Some(t) = &self.o.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let timeout = self.o.http.timeout.unwrap_or(Duration::from_secs(10));
        req = req.header("Connect-Timeout-Ms", timeout.as_millis().to_string());
        match req.send() {
            Ok(r) => outcome(r),
            Err(e) => super::http::transport_error(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Sample;

    #[test]
    fn big_windows_are_split_within_the_limits_and_keep_every_sample() {
        let mut p = Profile::new_cpu(19, std::time::SystemTime::now());
        p.samples = (0..40_000)
            .map(|i| Sample {
                location_ids: vec![],
                values: vec![1, i],
                labels: vec![],
            })
            .collect();
        let parts = within_limits(&p).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|x| x.samples.len() <= MAX_SAMPLES));
        let w: u64 = parts.iter().map(Profile::total_weight).sum();
        assert_eq!(w, p.total_weight());
    }

    #[test]
    fn labels_stay_within_thirty() {
        let mut series = crate::sink::Series {
            service: "s".into(),
            ..Default::default()
        };
        for i in 0..40 {
            series.labels.insert(format!("a{i:02}"), "v".into());
        }
        let p = Payload {
            seq: 1,
            series,
            pprof: vec![],
            start: std::time::SystemTime::now(),
            duration: Duration::ZERO,
            weight_ns: 0,
            queued: Instant::now(),
        };
        let l = labels(&p);
        assert_eq!(l.len(), MAX_LABELS);
        assert!(l.iter().any(|(k, _)| k == "service_name"));
        assert!(l.iter().any(|(k, _)| k == "__name__"));
    }
}
