//! `profile.proto` reading and writing (the `.pb.gz` format of pprof and runtime/pprof).
//!
//! The messages are written by hand with prost's derive (no protoc); field numbers follow
//! google/pprof's `proto/profile.proto`. Strings are decoded as bytes and converted lossily,
//! since Go strings need not be UTF-8.

use crate::profile::{
    Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType,
};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Decompressed profiles larger than this are refused (a gzip bomb guard).
const MAX_DECOMPRESSED: u64 = 2 << 30;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<PbValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<PbSample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<PbMapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<PbLocation>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<PbFunction>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub string_table: Vec<Vec<u8>>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<PbValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
    #[prost(int64, tag = "15")]
    pub doc_url: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbSample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<PbLabel>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbLabel {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbMapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbLocation {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<PbLine>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbLine {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
    #[prost(int64, tag = "3")]
    pub column: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PbFunction {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// Why bytes could not be read as a profile.
#[derive(Debug, thiserror::Error)]
pub enum PprofError {
    #[error("empty input: not a pprof profile")]
    Empty,
    /// Gzip framing that does not decompress (its cause is the source, printed once by `{:#}`).
    #[error("not a pprof profile: bad gzip data")]
    Gzip(#[source] std::io::Error),
    #[error("decompressed profile larger than {MAX_DECOMPRESSED} bytes")]
    TooLarge,
    /// Bytes that are not a `profile.proto` message. The decoder's detail is kept for `{:?}`
    /// only: what a user needs is that the file is not a profile.
    #[error("{}", if *gzipped {
        "not a pprof profile: gzip data that is not profile.proto"
    } else {
        "not a pprof profile: neither gzip nor profile.proto"
    })]
    Decode {
        gzipped: bool,
        detail: prost::DecodeError,
    },
    #[error("malformed profile: string table must start with the empty string")]
    StringTable,
    #[error("malformed profile: {what} refers to string {index}, table has {len}")]
    StringIndex {
        what: &'static str,
        index: i64,
        len: usize,
    },
    #[error("malformed profile: {kind} id {id} is zero or repeated")]
    DuplicateId { kind: &'static str, id: u64 },
    #[error("malformed profile: {what} refers to unknown {kind} id {id}")]
    UnknownId {
        what: &'static str,
        kind: &'static str,
        id: u64,
    },
    #[error("malformed profile: sample {index} has {got} values, profile has {want} sample types")]
    ValueCount {
        index: usize,
        got: usize,
        want: usize,
    },
}

/// Interns strings for the string table; index 0 is "".
struct Strings {
    table: Vec<Vec<u8>>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.as_bytes().to_vec());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn nanos_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The profile as an uncompressed `profile.proto` message.
pub(crate) fn to_proto(profile: &Profile) -> Result<PbProfile, super::ReportError> {
    let mut st = Strings::new();
    let mut pb = PbProfile::default();
    for t in &profile.sample_types {
        pb.sample_type.push(PbValueType {
            r#type: st.get(&t.kind),
            unit: st.get(&t.unit),
        });
    }
    let nloc = profile.locations.len() as u64;
    for (i, s) in profile.samples.iter().enumerate() {
        if let Some(bad) = s.location_ids.iter().find(|&&id| id == 0 || id > nloc) {
            return Err(super::ReportError::Invalid(format!(
                "sample {i} refers to location {bad}, profile has {nloc}"
            )));
        }
        if s.values.len() != profile.sample_types.len() {
            return Err(super::ReportError::Invalid(format!(
                "sample {i} has {} values for {} sample types",
                s.values.len(),
                profile.sample_types.len()
            )));
        }
        let label = s
            .labels
            .iter()
            .map(|l| match &l.value {
                LabelValue::Str(v) => PbLabel {
                    key: st.get(&l.key),
                    str: st.get(v),
                    ..Default::default()
                },
                LabelValue::Num(n) => PbLabel {
                    key: st.get(&l.key),
                    num: *n,
                    ..Default::default()
                },
            })
            .collect();
        pb.sample.push(PbSample {
            location_id: s.location_ids.clone(),
            value: s.values.clone(),
            label,
        });
    }
    for (i, m) in profile.mappings.iter().enumerate() {
        pb.mapping.push(PbMapping {
            id: i as u64 + 1,
            memory_start: m.start,
            memory_limit: m.limit,
            file_offset: m.offset,
            filename: st.get(&m.file),
            build_id: st.get(&m.build_id),
            has_functions: m.has_functions,
            has_filenames: m.has_filenames,
            has_line_numbers: m.has_line_numbers,
            has_inline_frames: m.has_inline_frames,
        });
    }
    let nmap = profile.mappings.len() as u64;
    let nfun = profile.functions.len() as u64;
    for (i, l) in profile.locations.iter().enumerate() {
        if l.mapping_id > nmap {
            return Err(super::ReportError::Invalid(format!(
                "location {} refers to mapping {}, profile has {nmap}",
                i + 1,
                l.mapping_id
            )));
        }
        let mut line = Vec::with_capacity(l.lines.len());
        for ln in &l.lines {
            if ln.function_id == 0 || ln.function_id > nfun {
                return Err(super::ReportError::Invalid(format!(
                    "location {} refers to function {}, profile has {nfun}",
                    i + 1,
                    ln.function_id
                )));
            }
            line.push(PbLine {
                function_id: ln.function_id,
                line: ln.line,
                column: 0,
            });
        }
        pb.location.push(PbLocation {
            id: i as u64 + 1,
            mapping_id: l.mapping_id,
            address: l.address,
            line,
            is_folded: false,
        });
    }
    for (i, f) in profile.functions.iter().enumerate() {
        pb.function.push(PbFunction {
            id: i as u64 + 1,
            name: st.get(&f.name),
            system_name: st.get(&f.system_name),
            filename: st.get(&f.filename),
            start_line: f.start_line,
        });
    }
    if profile.start_time != UNIX_EPOCH {
        pb.time_nanos = nanos_since_epoch(profile.start_time);
    }
    pb.duration_nanos = i64::try_from(profile.duration.as_nanos()).unwrap_or(i64::MAX);
    if let Some(pt) = &profile.period_type {
        pb.period_type = Some(PbValueType {
            r#type: st.get(&pt.kind),
            unit: st.get(&pt.unit),
        });
    }
    pb.period = profile.period;
    let mut comments: Vec<String> = profile.comments.clone();
    if let Some(f) = super::footer(profile) {
        comments.extend(f.lines().map(str::to_string));
    }
    for c in &comments {
        let i = st.get(c);
        pb.comment.push(i);
    }
    let n = profile.sample_types.len();
    if n > 0 && profile.default_sample_type < n - 1 {
        pb.default_sample_type = st.get(&profile.sample_types[profile.default_sample_type].kind);
    }
    pb.string_table = st.table;
    Ok(pb)
}

/// The size of the profile as uncompressed `profile.proto` (what backends limit).
pub fn encoded_size(profile: &Profile) -> Result<usize, super::ReportError> {
    use prost::Message as _;
    Ok(to_proto(profile)?.encoded_len())
}

/// The profile as a gzipped `profile.proto` (what `go tool pprof` reads).
pub fn encode_pprof(profile: &Profile) -> Result<Vec<u8>, super::ReportError> {
    use prost::Message as _;
    let raw = to_proto(profile)?.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::default(),
    );
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

/// Reads a profile from gzipped or raw `profile.proto` bytes. Never panics on bad input.
pub fn decode_pprof(bytes: &[u8]) -> Result<Profile, PprofError> {
    use prost::Message as _;
    if bytes.is_empty() {
        return Err(PprofError::Empty);
    }
    let owned;
    let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
    let raw: &[u8] = if gzipped {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(PprofError::Gzip)?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(PprofError::TooLarge);
        }
        owned = out;
        &owned
    } else {
        bytes
    };
    if raw.is_empty() {
        return Err(PprofError::Empty);
    }
    let pb = PbProfile::decode(raw).map_err(|detail| PprofError::Decode { gzipped, detail })?;
    from_proto(pb)
}

fn ids<'a>(
    kind: &'static str,
    it: impl Iterator<Item = &'a u64>,
) -> Result<HashMap<u64, u64>, PprofError> {
    let mut map = HashMap::new();
    for (i, &id) in it.enumerate() {
        if id == 0 || map.insert(id, i as u64 + 1).is_some() {
            return Err(PprofError::DuplicateId { kind, id });
        }
    }
    Ok(map)
}

pub(crate) fn from_proto(pb: PbProfile) -> Result<Profile, PprofError> {
    let strings: Vec<String> = pb
        .string_table
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    if strings.first().map(|s| !s.is_empty()).unwrap_or(true) {
        return Err(PprofError::StringTable);
    }
    let len = strings.len();
    let s = |what: &'static str, index: i64| -> Result<String, PprofError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| strings.get(i))
            .cloned()
            .ok_or(PprofError::StringIndex { what, index, len })
    };
    let value_type = |v: &PbValueType, what| -> Result<ValueType, PprofError> {
        Ok(ValueType {
            kind: s(what, v.r#type)?,
            unit: s(what, v.unit)?,
        })
    };

    let sample_types = pb
        .sample_type
        .iter()
        .map(|v| value_type(v, "sample type"))
        .collect::<Result<Vec<_>, _>>()?;
    let mapping_ids = ids("mapping", pb.mapping.iter().map(|m| &m.id))?;
    let function_ids = ids("function", pb.function.iter().map(|f| &f.id))?;
    let loc_ids = ids("location", pb.location.iter().map(|l| &l.id))?;

    let mut mappings = Vec::with_capacity(pb.mapping.len());
    for m in &pb.mapping {
        mappings.push(Mapping {
            start: m.memory_start,
            limit: m.memory_limit,
            offset: m.file_offset,
            file: s("mapping file", m.filename)?,
            build_id: s("mapping build id", m.build_id)?,
            has_functions: m.has_functions,
            has_filenames: m.has_filenames,
            has_line_numbers: m.has_line_numbers,
            has_inline_frames: m.has_inline_frames,
        });
    }
    let mut functions = Vec::with_capacity(pb.function.len());
    for f in &pb.function {
        functions.push(Function {
            name: s("function name", f.name)?,
            system_name: s("function system name", f.system_name)?,
            filename: s("function file", f.filename)?,
            start_line: f.start_line,
        });
    }
    let mut locations = Vec::with_capacity(pb.location.len());
    for l in &pb.location {
        let mut lines = Vec::with_capacity(l.line.len());
        for ln in &l.line {
            let function_id = *function_ids
                .get(&ln.function_id)
                .ok_or(PprofError::UnknownId {
                    what: "location line",
                    kind: "function",
                    id: ln.function_id,
                })?;
            lines.push(Line {
                function_id,
                line: ln.line,
            });
        }
        // Like pprof, a location whose mapping is missing simply has none.
        let mapping_id = mapping_ids.get(&l.mapping_id).copied().unwrap_or(0);
        locations.push(Location {
            mapping_id,
            address: l.address,
            lines,
        });
    }
    let mut samples = Vec::with_capacity(pb.sample.len());
    for (index, smp) in pb.sample.iter().enumerate() {
        if smp.value.len() != sample_types.len() {
            return Err(PprofError::ValueCount {
                index,
                got: smp.value.len(),
                want: sample_types.len(),
            });
        }
        let mut location_ids = Vec::with_capacity(smp.location_id.len());
        for id in &smp.location_id {
            let index = loc_ids.get(id).ok_or(PprofError::UnknownId {
                what: "sample",
                kind: "location",
                id: *id,
            })?;
            location_ids.push(*index);
        }
        let mut labels = Vec::with_capacity(smp.label.len());
        for l in &smp.label {
            let key = s("label key", l.key)?;
            if l.str != 0 {
                labels.push(Label {
                    key,
                    value: LabelValue::Str(s("label value", l.str)?),
                });
            } else if l.num != 0 || l.num_unit != 0 {
                s("label unit", l.num_unit)?;
                labels.push(Label {
                    key,
                    value: LabelValue::Num(l.num),
                });
            }
        }
        samples.push(Sample {
            location_ids,
            values: smp.value.clone(),
            labels,
        });
    }
    let period_type = match &pb.period_type {
        Some(v) => Some(value_type(v, "period type")?),
        None => None,
    };
    let mut comments = Vec::with_capacity(pb.comment.len());
    for &c in &pb.comment {
        comments.push(s("comment", c)?);
    }
    let default_name = s("default sample type", pb.default_sample_type)?;
    let last = sample_types.len().saturating_sub(1);
    let default_sample_type = if default_name.is_empty() {
        last
    } else {
        sample_types
            .iter()
            .position(|t| t.kind == default_name)
            .unwrap_or(last)
    };
    s("doc url", pb.doc_url)?;
    let start_time = if pb.time_nanos > 0 {
        UNIX_EPOCH + Duration::from_nanos(pb.time_nanos as u64)
    } else {
        UNIX_EPOCH
    };
    Ok(Profile {
        sample_types,
        samples,
        mappings,
        locations,
        functions,
        start_time,
        duration: Duration::from_nanos(pb.duration_nanos.max(0) as u64),
        period_type,
        period: pb.period,
        comments,
        default_sample_type,
        stats: None,
    })
}
