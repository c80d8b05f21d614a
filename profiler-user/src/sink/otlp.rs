//! OpenTelemetry OTLP profiles (`opentelemetry.proto.profiles.v1development`, the schema of
//! crates.io `opentelemetry-proto` 0.33, proto v1.10.0) over HTTP/protobuf
//! (`POST {endpoint}/v1development/profiles`, gzip) or gRPC (`ProfilesService/Export`, see
//! [`super::otlp_grpc`]). One request per series and window: one
//! `ResourceProfiles` (the series as resource attributes: `service.name`, `host.name`,
//! `container.id`, ...), one CPU `Profile` (`cpu/nanoseconds` values, `period` from the rate)
//! whose samples carry `process.pid` and `process.executable.name` attributes, and the
//! request's dictionary (index 0 of every table is the null entry the spec requires).
//! Mappings carry the build id as `process.executable.build_id.gnu` / `.go`.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Instant, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::profiles::v1development as otlp;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::http::HttpOptions;
use super::queue::{NetworkSink, Outcome, Payload, QueueOptions, Transport};
use super::{SeriesProfile, SinkError};
use crate::profile::LabelValue;

/// How OTLP is carried (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OtlpProtocol {
    /// `POST {endpoint}/v1development/profiles`, protobuf, gzip (port 4318 by convention).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `ProfilesService/Export` (port 4317 by convention).
    #[serde(rename = "grpc")]
    Grpc,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http/protobuf" | "http" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            _ => Err(format!("{s:?}: expected grpc or http/protobuf")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OtlpOptions {
    /// Base URL, e.g. `http://collector:4318` (HTTP: the path is added) or
    /// `http://collector:4317` (gRPC).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// `OTLP-Profiles-Development-Version`; None: not sent (the receiver assumes 1).
    pub dev_version: Option<u32>,
    pub http: HttpOptions,
    pub queue: QueueOptions,
}

/// An OTLP sink: a [`NetworkSink`] with the transport of `o.protocol`.
pub fn sink(name: &str, o: OtlpOptions) -> Result<NetworkSink, SinkError> {
    Ok(match o.protocol {
        OtlpProtocol::HttpProtobuf => {
            let transport = HttpTransport {
                client: o.http.client()?,
                o: o.clone(),
            };
            NetworkSink::new(name, o.queue, Box::new(transport), encode_gzip)
        }
        OtlpProtocol::Grpc => {
            let transport =
                super::otlp_grpc::GrpcTransport::new(&o.endpoint, &o.http, o.dev_version)?;
            // tonic compresses on the wire: the queue keeps the plain request.
            NetworkSink::new(name, o.queue, Box::new(transport), encode_plain)
        }
    })
}

/// The export request, gzipped (the HTTP body).
fn encode_gzip(p: &SeriesProfile<'_>) -> Result<Vec<Payload>, SinkError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&export_request(p).encode_to_vec())
        .map_err(|e| SinkError::Encode(e.to_string()))?;
    let body = gz.finish().map_err(|e| SinkError::Encode(e.to_string()))?;
    Ok(vec![payload(p, body)])
}

/// The export request, encoded.
fn encode_plain(p: &SeriesProfile<'_>) -> Result<Vec<Payload>, SinkError> {
    Ok(vec![payload(p, export_request(p).encode_to_vec())])
}

fn payload(p: &SeriesProfile<'_>, body: Vec<u8>) -> Payload {
    Payload {
        seq: p.seq,
        series: p.series.clone(),
        pprof: body,
        start: p.profile.start_time,
        duration: p.profile.duration,
        weight_ns: p.profile.total_weight(),
        queued: Instant::now(),
    }
}

fn string_value(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    })
}

/// Interns strings and attributes into the request's dictionary.
struct Dict {
    d: otlp::ProfilesDictionary,
    strings: HashMap<String, i32>,
    attributes: HashMap<(i32, String), i32>,
}

impl Dict {
    fn new() -> Dict {
        let mut d = Dict {
            d: otlp::ProfilesDictionary {
                // The null entries at index 0.
                mapping_table: vec![otlp::Mapping::default()],
                location_table: vec![otlp::Location::default()],
                function_table: vec![otlp::Function::default()],
                link_table: vec![otlp::Link::default()],
                string_table: Vec::new(),
                attribute_table: vec![otlp::KeyValueAndUnit::default()],
                stack_table: vec![otlp::Stack::default()],
            },
            strings: HashMap::new(),
            attributes: HashMap::new(),
        };
        d.string("");
        d
    }

    fn string(&mut self, s: &str) -> i32 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.d.string_table.len() as i32;
        self.d.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn attribute(&mut self, key: &str, value: &LabelValue) -> i32 {
        let k = self.string(key);
        let shown = match value {
            LabelValue::Str(s) => format!("s{s}"),
            LabelValue::Num(n) => format!("n{n}"),
        };
        if let Some(&i) = self.attributes.get(&(k, shown.clone())) {
            return i;
        }
        let v = match value {
            LabelValue::Str(s) => any_value::Value::StringValue(s.clone()),
            LabelValue::Num(n) => any_value::Value::IntValue(*n),
        };
        let i = self.d.attribute_table.len() as i32;
        self.d.attribute_table.push(otlp::KeyValueAndUnit {
            key_strindex: k,
            value: Some(AnyValue { value: Some(v) }),
            unit_strindex: 0,
        });
        self.attributes.insert((k, shown), i);
        i
    }
}

/// Our label names as OpenTelemetry attribute names.
fn attribute_name(label: &str) -> &str {
    match label {
        "pid" => "process.pid",
        "tid" => "thread.id",
        "process" => "process.executable.name",
        other => other,
    }
}

/// Series labels as resource attributes (semantic conventions where one exists).
fn resource_attribute(label: &str) -> String {
    match label {
        "host_name" => "host.name".into(),
        "container_id" => "container.id".into(),
        "pod_uid" => "k8s.pod.uid".into(),
        "go_version" => "process.runtime.version".into(),
        "build_id" => "process.executable.build_id.gnu".into(),
        other => other.to_string(),
    }
}

/// One series' window as an OTLP export request.
pub fn export_request(p: &SeriesProfile<'_>) -> ExportProfilesServiceRequest {
    let prof = p.profile;
    let mut dict = Dict::new();
    // Mappings, functions and locations: our 1-based ids become table indexes.
    let mapping_base = dict.d.mapping_table.len() as i32;
    for m in &prof.mappings {
        let mut attribute_indices = Vec::new();
        if !m.build_id.is_empty() {
            attribute_indices.push(dict.attribute(
                "process.executable.build_id.gnu",
                &LabelValue::Str(m.build_id.clone()),
            ));
        }
        let filename_strindex = dict.string(&m.file);
        dict.d.mapping_table.push(otlp::Mapping {
            memory_start: m.start,
            memory_limit: m.limit,
            file_offset: m.offset,
            filename_strindex,
            attribute_indices,
        });
    }
    let function_base = dict.d.function_table.len() as i32;
    for f in &prof.functions {
        let function = otlp::Function {
            name_strindex: dict.string(&f.name),
            system_name_strindex: dict.string(&f.system_name),
            filename_strindex: dict.string(&f.filename),
            start_line: f.start_line,
        };
        dict.d.function_table.push(function);
    }
    let location_base = dict.d.location_table.len() as i32;
    for l in &prof.locations {
        dict.d.location_table.push(otlp::Location {
            mapping_index: if l.mapping_id == 0 {
                0
            } else {
                mapping_base + l.mapping_id as i32 - 1
            },
            address: l.address,
            lines: l
                .lines
                .iter()
                .map(|x| otlp::Line {
                    function_index: function_base + x.function_id as i32 - 1,
                    line: x.line,
                    column: 0,
                })
                .collect(),
            attribute_indices: Vec::new(),
        });
    }
    let weight = prof
        .sample_types
        .iter()
        .position(|t| t.unit == "nanoseconds")
        .unwrap_or(0);
    let mut samples = Vec::with_capacity(prof.samples.len());
    for s in &prof.samples {
        let stack_index = dict.d.stack_table.len() as i32;
        dict.d.stack_table.push(otlp::Stack {
            location_indices: s
                .location_ids
                .iter()
                .map(|&id| location_base + id as i32 - 1)
                .collect(),
        });
        let attribute_indices = s
            .labels
            .iter()
            .map(|l| dict.attribute(attribute_name(&l.key), &l.value))
            .collect();
        samples.push(otlp::Sample {
            stack_index,
            attribute_indices,
            link_index: 0,
            values: vec![s.values.get(weight).copied().unwrap_or(0)],
            timestamps_unix_nano: Vec::new(),
        });
    }
    let cpu = dict.string("cpu");
    let ns = dict.string("nanoseconds");
    let start = prof
        .start_time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let profile = otlp::Profile {
        sample_type: Some(otlp::ValueType {
            type_strindex: cpu,
            unit_strindex: ns,
        }),
        samples,
        time_unix_nano: start,
        duration_nano: prof.duration.as_nanos() as u64,
        period_type: Some(otlp::ValueType {
            type_strindex: cpu,
            unit_strindex: ns,
        }),
        period: prof.period,
        profile_id: profile_id(),
        dropped_attributes_count: 0,
        original_payload_format: String::new(),
        original_payload: Vec::new(),
        attribute_indices: Vec::new(),
    };
    let mut attributes = vec![KeyValue {
        key: "service.name".into(),
        value: string_value(&p.series.service),
        key_strindex: 0,
    }];
    attributes.extend(p.series.labels.iter().map(|(k, v)| KeyValue {
        key: resource_attribute(k),
        value: string_value(v),
        key_strindex: 0,
    }));
    ExportProfilesServiceRequest {
        resource_profiles: vec![otlp::ResourceProfiles {
            resource: Some(Resource {
                attributes,
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_profiles: vec![otlp::ScopeProfiles {
                scope: Some(InstrumentationScope {
                    name: "gprof-bpf".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 0,
                }),
                profiles: vec![profile],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
        dictionary: Some(dict.d),
    }
}

/// 16 random bytes, never all zero (the spec calls that invalid).
fn profile_id() -> Vec<u8> {
    let mut id: Vec<u8> = (0..16).map(|_| fastrand::u8(..)).collect();
    id[0] |= 1;
    id
}

struct HttpTransport {
    client: reqwest::blocking::Client,
    o: OtlpOptions,
}

/// OTLP's retry rule: 429, 502, 503, 504 (honouring `Retry-After`); every other 4xx or 5xx is
/// final.
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
    let message: String = r.text().unwrap_or_default().chars().take(500).collect();
    match status {
        429 | 502 | 503 | 504 => Outcome::Retry {
            reason: format!("http_{status}"),
            after: retry_after,
        },
        _ => Outcome::Reject {
            reason: format!("http_{status}"),
            message,
        },
    }
}

impl Transport for HttpTransport {
    fn send(&mut self, p: &Payload) -> Outcome {
        let url = format!(
            "{}/v1development/profiles",
            self.o.endpoint.trim_end_matches('/')
        );
        let mut req = self
            .client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "gzip")
            .body(p.pprof.clone());
        if let Some(v) = self.o.dev_version {
            req = req.header("OTLP-Profiles-Development-Version", v.to_string());
        }
        match self.o.http.apply(req).send() {
            Ok(r) => outcome(r),
            Err(e) => super::http::transport_error(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Function, Label, Line, Location, Mapping, Profile, Sample};
    use crate::sink::Series;

    #[test]
    fn the_dictionary_starts_with_nulls_and_indexes_line_up() {
        let mut p = Profile::new_cpu(19, std::time::SystemTime::now());
        p.mappings.push(Mapping {
            start: 0x400000,
            limit: 0x500000,
            file: "/srv/billing".into(),
            build_id: "abcd".into(),
            ..Default::default()
        });
        p.functions.push(Function {
            name: "main.hot".into(),
            system_name: "main.hot".into(),
            filename: "/src/main.go".into(),
            start_line: 10,
        });
        p.locations.push(Location {
            mapping_id: 1,
            address: 0x401000,
            lines: vec![Line {
                function_id: 1,
                line: 12,
            }],
        });
        p.samples.push(Sample {
            location_ids: vec![1],
            values: vec![3, 157_894_736],
            labels: vec![Label {
                key: "pid".into(),
                value: LabelValue::Num(42),
            }],
        });
        let series = Series {
            service: "github.com/acme/billing".into(),
            ..Default::default()
        };
        let r = export_request(&SeriesProfile {
            seq: 1,
            series: &series,
            profile: &p,
        });
        let d = r.dictionary.as_ref().unwrap();
        assert_eq!(d.string_table[0], "");
        assert_eq!(d.mapping_table[0], otlp::Mapping::default());
        let prof = &r.resource_profiles[0].scope_profiles[0].profiles[0];
        let s = &prof.samples[0];
        assert_eq!(s.values, [157_894_736]);
        let loc =
            &d.location_table[d.stack_table[s.stack_index as usize].location_indices[0] as usize];
        assert_eq!(loc.address, 0x401000);
        assert_eq!(
            d.mapping_table[loc.mapping_index as usize].memory_start,
            0x400000
        );
        let f = &d.function_table[loc.lines[0].function_index as usize];
        assert_eq!(d.string_table[f.name_strindex as usize], "main.hot");
        assert_eq!(f.start_line, 10);
        let a = &d.attribute_table[s.attribute_indices[0] as usize];
        assert_eq!(d.string_table[a.key_strindex as usize], "process.pid");
    }
}
