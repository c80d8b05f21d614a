//! Captures: a recording's inputs, kept so that ingest, windows and symbolization can be run
//! again without root and without `/proc` (replay), for fast tests and for bug reports.
//!
//! A capture holds, in the order they happened, the sampler's messages (events, batches),
//! the window cuts, and every answer the registry got from `/proc` through its
//! [`ProcessSource`] (maps text, comm, exe, start times, which files were opened and their
//! build ids). Files are referenced by path and checked by build id on replay, not copied.
//!
//! Format: gzip of JSON lines, one [`Record`] a line, the first a [`Header`] naming the format
//! and its version. Reading one is parsing external bytes: every failure is a
//! [`CaptureError`], never a panic (`fuzz/fuzz_targets/capture.rs`).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use profiler_ebpf::{ProcessEvent, STAT_SLOTS, SampleKey, SampleValue};
use serde::{Deserialize, Serialize};

use crate::pipeline::window::Window;
use crate::pipeline::{Feed, Pipeline, PipelineError, PipelineOptions, PipelineStats};
use crate::process::registry::Registry;
use crate::process::{MapEntry, ObjectError, ObjectFile, ProcessSource, ReadError};
use crate::profile::Profile;
use crate::sampler::{Batch, SamplerError, SamplerMsg};
use crate::sink::Sink;

/// The `format` of a capture's header.
pub const FORMAT: &str = "gprof-bpf-capture";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// Decompressed bytes a capture may have, and bytes a line may have.
const MAX_BYTES: u64 = 1 << 32;
const MAX_LINE: u64 = 256 << 20;

/// The first record: what the recording was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub frequency_hz: u64,
    /// `--all`: the registry forgot vanished processes after every batch.
    pub all: bool,
    /// The window interval in milliseconds (None: one window).
    pub window_ms: Option<u64>,
    pub keep_total: bool,
}

impl Header {
    pub fn new(opts: &PipelineOptions, all: bool) -> Self {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            frequency_hz: opts.frequency_hz,
            all,
            window_ms: opts.window.map(|w| w.as_millis() as u64),
            keep_total: opts.keep_total,
        }
    }
}

/// One line of a capture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Header(Header),
    /// A process given on the command line, snapshotted before sampling started.
    Target(u32),
    Events(Vec<Event>),
    Batch(BatchRecord),
    /// The sampler failed (its message).
    Failed(String),
    /// The pipeline cut a window after the preceding batch.
    Cut,
    /// An answer of the live process source.
    Read(ReadRecord),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: u32,
    pub tgid: u32,
    pub value: u32,
}

/// [`SampleKey`] and [`SampleValue`] in one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub tgid: u32,
    pub generation: u32,
    pub tid: u32,
    pub kernel_stack_id: i32,
    pub user_stack_hash: u64,
    pub frame0: [u64; 2],
    pub flags: u32,
    pub label_set: u32,
    pub goid: u64,
    pub count: u64,
    pub weight_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub seq: u64,
    pub counts: Vec<Count>,
    /// (hash, frames innermost first, truncated), sorted by hash.
    pub user_stacks: Vec<(u64, Vec<u64>, bool)>,
    /// (id, frames innermost first), sorted by id.
    pub kernel_stacks: Vec<(i32, Vec<u64>)>,
    pub kernel_stats: Vec<u64>,
    pub last: bool,
    /// The label sets the counts name, sorted by id (absent in captures made before labels).
    #[serde(default)]
    pub label_sets: Vec<LabelSetRecord>,
}

/// One decoded pprof label set of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelSetRecord {
    pub id: u32,
    pub pairs: Vec<(String, String)>,
    pub cut_labels: bool,
    pub cut_bytes: bool,
}

/// One answer of [`ProcessSource`], with the question's pid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReadRecord {
    StartTime(u32, Option<u64>),
    Parent(u32, Option<u32>),
    Cgroup(u32, String),
    Exe(u32, String),
    Comm(u32, Option<String>),
    Maps(u32, MapsRead),
    Alive(u32, bool),
    /// The file of the mapping at `start` of `pid`.
    Open {
        pid: u32,
        start: u64,
        result: OpenRead,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MapsRead {
    Text(String),
    Gone,
    Denied,
    Unreadable(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpenRead {
    /// Opened: the path as the process saw it, and the build id it had.
    Opened { path: String, build_id: String },
    /// Not opened: why ([`ObjectError::reason`]) and the message.
    Failed { reason: String, error: String },
}

impl From<&ProcessEvent> for Event {
    fn from(e: &ProcessEvent) -> Self {
        Event {
            kind: e.kind,
            tgid: e.tgid,
            value: e.value,
        }
    }
}

impl From<&Event> for ProcessEvent {
    fn from(e: &Event) -> Self {
        ProcessEvent {
            kind: e.kind,
            tgid: e.tgid,
            value: e.value,
            _pad: 0,
        }
    }
}

impl From<&Batch> for BatchRecord {
    fn from(b: &Batch) -> Self {
        let mut user_stacks: Vec<_> = b
            .user_stacks
            .iter()
            .map(|(&h, (f, t))| (h, f.clone(), *t))
            .collect();
        user_stacks.sort_by_key(|s| s.0);
        let mut kernel_stacks: Vec<_> = b
            .kernel_stacks
            .iter()
            .map(|(&id, f)| (id, f.clone()))
            .collect();
        kernel_stacks.sort_by_key(|s| s.0);
        BatchRecord {
            seq: b.seq,
            counts: b
                .counts
                .iter()
                .map(|(k, v)| Count {
                    tgid: k.tgid,
                    generation: k.generation,
                    tid: k.tid,
                    kernel_stack_id: k.kernel_stack_id,
                    user_stack_hash: k.user_stack_hash,
                    frame0: k.frame0,
                    flags: k.flags,
                    label_set: k.label_set,
                    goid: k.goid,
                    count: v.count,
                    weight_ns: v.weight_ns,
                })
                .collect(),
            user_stacks,
            kernel_stacks,
            kernel_stats: b.kernel_stats.to_vec(),
            last: b.last,
            label_sets: {
                let mut sets: Vec<LabelSetRecord> = b
                    .label_sets
                    .iter()
                    .map(|(&id, l)| LabelSetRecord {
                        id,
                        pairs: l.pairs.clone(),
                        cut_labels: l.cut_labels,
                        cut_bytes: l.cut_bytes,
                    })
                    .collect();
                sets.sort_by_key(|s| s.id);
                sets
            },
        }
    }
}

impl TryFrom<&BatchRecord> for Batch {
    type Error = String;

    fn try_from(b: &BatchRecord) -> Result<Self, String> {
        // Captures made before the goroutine counters were added have 12: those read 0.
        if b.kernel_stats.len() != STAT_SLOTS as usize && b.kernel_stats.len() != 12 {
            return Err(format!(
                "batch {}: {} kernel counters, expected {STAT_SLOTS} (or 12)",
                b.seq,
                b.kernel_stats.len()
            ));
        }
        let mut kernel_stats = [0u64; STAT_SLOTS as usize];
        kernel_stats[..b.kernel_stats.len()].copy_from_slice(&b.kernel_stats);
        Ok(Batch {
            seq: b.seq,
            counts: b
                .counts
                .iter()
                .map(|c| {
                    (
                        SampleKey {
                            tgid: c.tgid,
                            generation: c.generation,
                            tid: c.tid,
                            kernel_stack_id: c.kernel_stack_id,
                            user_stack_hash: c.user_stack_hash,
                            frame0: c.frame0,
                            flags: c.flags,
                            label_set: c.label_set,
                            goid: c.goid,
                        },
                        SampleValue {
                            count: c.count,
                            weight_ns: c.weight_ns,
                        },
                    )
                })
                .collect(),
            user_stacks: b
                .user_stacks
                .iter()
                .map(|(h, f, t)| (*h, (f.clone(), *t)))
                .collect(),
            kernel_stacks: b.kernel_stacks.iter().cloned().collect(),
            kernel_stats,
            label_sets: b
                .label_sets
                .iter()
                .map(|s| {
                    (
                        s.id,
                        std::sync::Arc::new(crate::sampler::labels::Labels {
                            pairs: s.pairs.clone(),
                            cut_labels: s.cut_labels,
                            cut_bytes: s.cut_bytes,
                        }),
                    )
                })
                .collect(),
            last: b.last,
        })
    }
}

/// Why a capture could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("writing the capture: {0}")]
    Write(std::io::Error),
    #[error("not a capture: not gzip")]
    NotGzip,
    #[error("reading the capture: {0}")]
    Read(std::io::Error),
    #[error("the capture is empty")]
    Empty,
    #[error("not a capture: the first line is not a {FORMAT} header")]
    NoHeader,
    #[error("capture version {found}; this build reads version {VERSION}")]
    Version { found: u32 },
    #[error("line {line}: {error}")]
    Malformed { line: u64, error: String },
    #[error("the capture is larger than {MAX_BYTES} bytes, or has a line of more than {MAX_LINE}")]
    TooLarge,
}

struct Writer {
    out: GzEncoder<Box<dyn Write + Send>>,
    error: Option<std::io::Error>,
}

/// Where a recording writes its capture: shared by the pipeline (messages) and the process
/// source (reads). A write error is kept and returned by [`SharedWriter::finish`].
#[derive(Clone)]
pub struct SharedWriter(Arc<Mutex<Writer>>);

impl SharedWriter {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, header: Header) -> Result<Self, CaptureError> {
        let file = std::fs::File::create(path).map_err(|source| CaptureError::Create {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(Box::new(std::io::BufWriter::new(file)), header))
    }

    /// A capture written to `out`.
    pub fn new(out: Box<dyn Write + Send>, header: Header) -> Self {
        let w = SharedWriter(Arc::new(Mutex::new(Writer {
            out: GzEncoder::new(out, Compression::default()),
            error: None,
        })));
        w.write(&Record::Header(header));
        w
    }

    pub fn write(&self, record: &Record) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if w.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut w.out, record)
            .map_err(std::io::Error::other)
            .and_then(|()| w.out.write_all(b"\n"));
        if let Err(e) = r {
            w.error = Some(e);
        }
    }

    /// Records a message of the sampler.
    pub fn message(&self, msg: &SamplerMsg) {
        self.write(&match msg {
            SamplerMsg::Events(e) => Record::Events(e.iter().map(Event::from).collect()),
            SamplerMsg::Batch(b) => Record::Batch(BatchRecord::from(b)),
            SamplerMsg::Failed(e) => Record::Failed(e.to_string()),
        });
    }

    /// Ends the gzip stream; the first error of any write.
    pub fn finish(&self) -> Result<(), CaptureError> {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = w.error.take() {
            return Err(CaptureError::Write(e));
        }
        w.out.try_finish().map_err(CaptureError::Write)?;
        w.out.get_mut().flush().map_err(CaptureError::Write)
    }
}

/// A capture read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    pub header: Header,
    /// Every record after the header, in order.
    pub records: Vec<Record>,
}

impl Capture {
    pub fn read_file(path: &Path) -> Result<Self, CaptureError> {
        let bytes = std::fs::read(path).map_err(CaptureError::Read)?;
        Self::parse(&bytes)
    }

    /// Parses the bytes of a capture file.
    pub fn parse(bytes: &[u8]) -> Result<Self, CaptureError> {
        if bytes.is_empty() {
            return Err(CaptureError::Empty);
        }
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(CaptureError::NotGzip);
        }
        let gz = flate2::read::MultiGzDecoder::new(bytes).take(MAX_BYTES);
        let mut reader = BufReader::new(gz);
        let mut header = None;
        let mut records = Vec::new();
        let mut line = Vec::new();
        let mut n = 0u64;
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(CaptureError::Read)?;
            if read == 0 {
                break;
            }
            if line.last() != Some(&b'\n') && read as u64 == MAX_LINE {
                return Err(CaptureError::TooLarge);
            }
            n += 1;
            let record: Record = serde_json::from_slice(&line).map_err(|e| match header {
                None => CaptureError::NoHeader,
                Some(_) => CaptureError::Malformed {
                    line: n,
                    error: e.to_string(),
                },
            })?;
            match (&header, record) {
                (None, Record::Header(h)) => {
                    if h.format != FORMAT {
                        return Err(CaptureError::NoHeader);
                    }
                    if h.version != VERSION {
                        return Err(CaptureError::Version { found: h.version });
                    }
                    header = Some(h);
                }
                (None, _) => return Err(CaptureError::NoHeader),
                (Some(_), Record::Header(_)) => {
                    return Err(CaptureError::Malformed {
                        line: n,
                        error: "a second header".into(),
                    });
                }
                (Some(_), Record::Batch(b)) => {
                    // Checked here, so that replay cannot meet a bad batch.
                    Batch::try_from(&b)
                        .map_err(|error| CaptureError::Malformed { line: n, error })?;
                    records.push(Record::Batch(b));
                }
                (Some(_), r) => records.push(r),
            }
        }
        let header = header.ok_or(CaptureError::Empty)?;
        Ok(Capture { header, records })
    }
}

/// The live source, recording every answer into a capture.
pub struct CapturingSource<S> {
    inner: S,
    out: SharedWriter,
}

impl<S: ProcessSource> CapturingSource<S> {
    pub fn new(inner: S, out: SharedWriter) -> Self {
        CapturingSource { inner, out }
    }

    fn keep<T>(&self, value: T, record: impl FnOnce(&T) -> ReadRecord) -> T {
        self.out.write(&Record::Read(record(&value)));
        value
    }
}

impl<S: ProcessSource> ProcessSource for CapturingSource<S> {
    fn start_time(&mut self, pid: u32) -> Option<u64> {
        let v = self.inner.start_time(pid);
        self.keep(v, |v| ReadRecord::StartTime(pid, *v))
    }

    fn parent(&mut self, pid: u32) -> Option<u32> {
        let v = self.inner.parent(pid);
        self.keep(v, |v| ReadRecord::Parent(pid, *v))
    }

    fn cgroup(&mut self, pid: u32) -> String {
        let v = self.inner.cgroup(pid);
        self.keep(v, |v| ReadRecord::Cgroup(pid, v.clone()))
    }

    fn exe(&mut self, pid: u32) -> String {
        let v = self.inner.exe(pid);
        self.keep(v, |v| ReadRecord::Exe(pid, v.clone()))
    }

    fn comm(&mut self, pid: u32) -> Option<String> {
        let v = self.inner.comm(pid);
        self.keep(v, |v| ReadRecord::Comm(pid, v.clone()))
    }

    fn maps(&mut self, pid: u32) -> Result<String, ReadError> {
        let v = self.inner.maps(pid);
        self.keep(v, |v| {
            ReadRecord::Maps(
                pid,
                match v {
                    Ok(t) => MapsRead::Text(t.clone()),
                    Err(ReadError::Gone) => MapsRead::Gone,
                    Err(ReadError::Denied) => MapsRead::Denied,
                    Err(ReadError::Unreadable(e)) => MapsRead::Unreadable(e.clone()),
                },
            )
        })
    }

    fn alive(&mut self, pid: u32) -> bool {
        let v = self.inner.alive(pid);
        self.keep(v, |v| ReadRecord::Alive(pid, *v))
    }

    fn open(&mut self, pid: u32, entry: &MapEntry) -> Result<ObjectFile, ObjectError> {
        let v = self.inner.open(pid, entry);
        self.keep(v, |v| ReadRecord::Open {
            pid,
            start: entry.start,
            result: match v {
                Ok(o) => OpenRead::Opened {
                    path: o.path.clone(),
                    build_id: o.build_id(),
                },
                Err(e) => OpenRead::Failed {
                    reason: e.reason().into(),
                    error: e.to_string(),
                },
            },
        })
    }
}

/// Where a replay finds a file the capture names: its recorded path, or another.
pub type FileMap = Box<dyn Fn(&str) -> PathBuf + Send>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Question {
    StartTime,
    Parent,
    Cgroup,
    Exe,
    Comm,
    Maps,
    Alive,
    Open(u64),
}

/// Answers the registry's questions from a capture: each (question, pid) gets the answers
/// recorded for it in order. A question the recording never asked gets the answer of a gone
/// process and is counted ([`CapturedSource::unanswered`]).
pub struct CapturedSource {
    answers: HashMap<(Question, u32), VecDeque<ReadRecord>>,
    files: FileMap,
    unanswered: Arc<AtomicU64>,
}

impl CapturedSource {
    pub fn new(records: &[Record], files: FileMap) -> Self {
        let mut answers: HashMap<_, VecDeque<_>> = HashMap::new();
        for r in records {
            let Record::Read(r) = r else { continue };
            let key = match *r {
                ReadRecord::StartTime(pid, _) => (Question::StartTime, pid),
                ReadRecord::Parent(pid, _) => (Question::Parent, pid),
                ReadRecord::Cgroup(pid, _) => (Question::Cgroup, pid),
                ReadRecord::Exe(pid, _) => (Question::Exe, pid),
                ReadRecord::Comm(pid, _) => (Question::Comm, pid),
                ReadRecord::Maps(pid, _) => (Question::Maps, pid),
                ReadRecord::Alive(pid, _) => (Question::Alive, pid),
                ReadRecord::Open { pid, start, .. } => (Question::Open(start), pid),
            };
            answers.entry(key).or_default().push_back(r.clone());
        }
        CapturedSource {
            answers,
            files,
            unanswered: Arc::default(),
        }
    }

    /// Questions the capture had no answer for (0 when the replay asked what the recording
    /// asked).
    pub fn unanswered(&self) -> Arc<AtomicU64> {
        self.unanswered.clone()
    }

    fn next(&mut self, q: Question, pid: u32) -> Option<ReadRecord> {
        let a = self.answers.get_mut(&(q, pid)).and_then(|a| a.pop_front());
        if a.is_none() {
            self.unanswered.fetch_add(1, Ordering::Relaxed);
        }
        a
    }
}

impl ProcessSource for CapturedSource {
    fn start_time(&mut self, pid: u32) -> Option<u64> {
        match self.next(Question::StartTime, pid)? {
            ReadRecord::StartTime(_, v) => v,
            _ => None,
        }
    }

    fn parent(&mut self, pid: u32) -> Option<u32> {
        match self.next(Question::Parent, pid)? {
            ReadRecord::Parent(_, v) => v,
            _ => None,
        }
    }

    fn cgroup(&mut self, pid: u32) -> String {
        match self.next(Question::Cgroup, pid) {
            Some(ReadRecord::Cgroup(_, v)) => v,
            _ => String::new(),
        }
    }

    fn exe(&mut self, pid: u32) -> String {
        match self.next(Question::Exe, pid) {
            Some(ReadRecord::Exe(_, v)) => v,
            _ => String::new(),
        }
    }

    fn comm(&mut self, pid: u32) -> Option<String> {
        match self.next(Question::Comm, pid)? {
            ReadRecord::Comm(_, v) => v,
            _ => None,
        }
    }

    fn maps(&mut self, pid: u32) -> Result<String, ReadError> {
        match self.next(Question::Maps, pid) {
            Some(ReadRecord::Maps(_, MapsRead::Text(t))) => Ok(t),
            Some(ReadRecord::Maps(_, MapsRead::Denied)) => Err(ReadError::Denied),
            Some(ReadRecord::Maps(_, MapsRead::Unreadable(e))) => Err(ReadError::Unreadable(e)),
            _ => Err(ReadError::Gone),
        }
    }

    fn alive(&mut self, pid: u32) -> bool {
        matches!(
            self.next(Question::Alive, pid),
            Some(ReadRecord::Alive(_, true))
        )
    }

    fn open(&mut self, pid: u32, entry: &MapEntry) -> Result<ObjectFile, ObjectError> {
        match self.next(Question::Open(entry.start), pid) {
            Some(ReadRecord::Open {
                result: OpenRead::Opened { path, build_id },
                ..
            }) => {
                let file = (self.files)(&path);
                let o = ObjectFile::open(path.clone(), &file)?;
                let found = o.build_id();
                if found != build_id {
                    return Err(ObjectError::BuildIdMismatch {
                        path: file.display().to_string(),
                        expected: build_id,
                        found,
                    });
                }
                Ok(o)
            }
            Some(ReadRecord::Open {
                result: OpenRead::Failed { reason, error },
                ..
            }) => Err(ObjectError::Captured {
                reason: ObjectError::reason_named(&reason),
                error,
            }),
            _ => Err(ObjectError::Captured {
                reason: "gone",
                error: format!("{}: not in the capture", entry.path),
            }),
        }
    }
}

/// Feeds a pipeline from a capture's records.
struct ReplayFeed<'a> {
    records: &'a [Record],
    next: usize,
    all: bool,
}

impl ReplayFeed<'_> {
    /// The next record that is a message or a cut (reads were handed to the source).
    fn peek(&mut self) -> Option<&Record> {
        while let Some(r) = self.records.get(self.next) {
            match r {
                Record::Read(_) | Record::Header(_) | Record::Target(_) => self.next += 1,
                _ => return Some(r),
            }
        }
        None
    }
}

impl Feed for ReplayFeed<'_> {
    fn recv(&mut self, _: Duration) -> Option<SamplerMsg> {
        loop {
            let Some(r) = self.peek() else {
                return Some(SamplerMsg::Failed(SamplerError::Setup(
                    "the capture ends before the last batch".into(),
                )));
            };
            let msg = match r {
                Record::Events(e) => Some(SamplerMsg::Events(
                    e.iter().map(ProcessEvent::from).collect(),
                )),
                Record::Batch(b) => Some(match Batch::try_from(b) {
                    Ok(b) => SamplerMsg::Batch(b),
                    Err(e) => SamplerMsg::Failed(SamplerError::Setup(e)),
                }),
                Record::Failed(e) => Some(SamplerMsg::Failed(SamplerError::Setup(e.clone()))),
                // A cut with no batch before it: nothing to cut.
                _ => None,
            };
            self.next += 1;
            if msg.is_some() {
                return msg;
            }
        }
    }

    fn frame0_rules(
        &mut self,
        rules: &mut Vec<(profiler_ebpf::Frame0Key, profiler_ebpf::Frame0Rule)>,
    ) {
        rules.clear();
    }

    fn forget_targets(&mut self, _: &[u32]) {}

    fn after_batch(&mut self, registry: &mut Registry) -> Option<String> {
        // What `record --all` did after every batch (its reads are in the capture).
        if self.all {
            registry.forget_vanished();
        }
        None
    }

    fn window_due(&mut self, _: bool) -> bool {
        if matches!(self.peek(), Some(Record::Cut)) {
            self.next += 1;
            return true;
        }
        false
    }
}

/// What a replay produced.
pub struct Replayed {
    /// The whole run (as `record` reports it; empty when the recording kept no total).
    pub profile: Profile,
    pub stats: PipelineStats,
    /// Questions of the registry the capture had no answer for.
    pub unanswered: u64,
    pub notes: Vec<String>,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Runs a capture through the same stages as the recording (ingest, windows, symbolize,
/// profile), with no `/proc` and no root: files are found through `files` (their recorded
/// path, or a copy) and must have the recorded build ids.
pub fn replay(
    capture: &Capture,
    files: FileMap,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<Replayed, ReplayError> {
    let h = &capture.header;
    let source = CapturedSource::new(&capture.records, files);
    let unanswered = source.unanswered();
    let mut pipeline = Pipeline::new(
        PipelineOptions {
            memory_limit: None,
            frequency_hz: h.frequency_hz,
            window: h.window_ms.map(Duration::from_millis),
            keep_total: h.keep_total,
        },
        sinks,
    );
    pipeline.registry = Registry::with_source(Box::new(source));
    for r in &capture.records {
        if let Record::Target(pid) = r {
            pipeline.registry.snapshot(*pid, 0);
        }
    }
    let mut feed = ReplayFeed {
        records: &capture.records,
        next: 0,
        all: h.all,
    };
    let total = pipeline.run_feed(&mut feed)?;
    let window = total.unwrap_or_else(|| Window::new(0, SystemTime::now()));
    let mut profile = pipeline.profile_of(&window);
    profile.start_time = window.start;
    profile.duration = window.duration;
    Ok(Replayed {
        profile,
        stats: pipeline.stats.clone(),
        unanswered: unanswered.load(Ordering::Relaxed),
        notes: pipeline.take_notes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::labels::Labels;

    /// A batch's label sets survive the capture (replays keep their labels).
    #[test]
    fn label_sets_round_trip() {
        let mut batch = Batch {
            seq: 3,
            counts: Vec::new(),
            user_stacks: Default::default(),
            kernel_stacks: Default::default(),
            label_sets: Default::default(),
            kernel_stats: [0; STAT_SLOTS as usize],
            last: false,
        };
        batch.label_sets.insert(
            7,
            std::sync::Arc::new(Labels {
                pairs: vec![("worker".into(), "1".into()), ("phase".into(), "a".into())],
                cut_labels: true,
                cut_bytes: false,
            }),
        );
        let line = serde_json::to_string(&Record::Batch(BatchRecord::from(&batch))).unwrap();
        let Record::Batch(back) = serde_json::from_str(&line).unwrap() else {
            panic!("not a batch: {line}");
        };
        let back = Batch::try_from(&back).unwrap();
        assert_eq!(back.label_sets.len(), 1);
        assert_eq!(*back.label_sets[&7], *batch.label_sets[&7]);
        // A capture written before labels has no field: it reads as none.
        let old = line.replace(r#","label_sets":[{"id":7,"pairs":[["worker","1"],["phase","a"]],"cut_labels":true,"cut_bytes":false}]"#, "");
        assert_ne!(old, line);
        let Record::Batch(back) = serde_json::from_str(&old).unwrap() else {
            panic!("not a batch: {old}");
        };
        assert!(back.label_sets.is_empty());
    }
}
