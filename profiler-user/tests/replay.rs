//! Ingest, windows and symbolization driven by a committed capture, without root or /proc:
//! `tests/data/hotloop.capture.gz` is one second of `hotloop cpu` (hotA about 2/3 of the
//! CPU, hotB 1/3) recorded with `gprof-bpf record --pid PID --capture FILE`, and
//! `tests/data/hotloop` the binary it ran (built from `tests/fixtures/go/hotloop` by Go 1.27.3
//! with `-trimpath -ldflags=-w -buildvcs=false`; the replay checks its build id).
//!
//! The oracles are independent of the code under test: the counts are the capture's own
//! numbers added up, and every frame in the binary is named as its ELF symbol table (read here
//! with the `object` crate) names the function at that address.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gprof_bpf::capture::{self, Capture, CaptureError, Record, Replayed};
use gprof_bpf::profile::Profile;
use gprof_bpf::sink::{SeriesProfile, Sink, SinkError};
use object::{Object as _, ObjectSymbol as _};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load() -> Capture {
    Capture::read_file(&data("hotloop.capture.gz")).expect("the committed capture reads")
}

/// The binary the capture names, found in tests/data.
fn files() -> capture::FileMap {
    Box::new(|p: &str| {
        if p.ends_with("/hotloop") {
            data("hotloop")
        } else {
            PathBuf::from(p)
        }
    })
}

fn replay(c: &Capture, sinks: Vec<Box<dyn Sink>>) -> Replayed {
    let started = Instant::now();
    let r = capture::replay(c, files(), sinks).expect("the capture replays");
    eprintln!("replayed in {:?}", started.elapsed());
    r
}

fn batches(c: &Capture) -> impl Iterator<Item = &capture::BatchRecord> {
    c.records.iter().filter_map(|r| match r {
        Record::Batch(b) => Some(b),
        _ => None,
    })
}

fn totals(p: &Profile) -> (i64, i64) {
    p.samples
        .iter()
        .fold((0, 0), |(n, w), s| (n + s.values[0], w + s.values[1]))
}

#[test]
fn every_sample_of_the_capture_is_in_the_profile() {
    let c = load();
    let r = replay(&c, Vec::new());
    let count: u64 = batches(&c).flat_map(|b| &b.counts).map(|c| c.count).sum();
    let weight: u64 = batches(&c)
        .flat_map(|b| &b.counts)
        .map(|c| c.weight_ns)
        .sum();
    assert!(count > 50, "the capture holds {count} samples");
    assert_eq!(totals(&r.profile), (count as i64, weight as i64));
    assert_eq!(r.unanswered, 0, "the replay asked what the recording asked");
    assert_eq!(r.stats.batches, batches(&c).count() as u64);
}

/// The function each address of the binary falls in, by its ELF symbol table.
fn symbol_at(elf: &object::File<'_>, addr: u64) -> Option<String> {
    elf.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text)
        .find(|s| addr >= s.address() && addr < s.address() + s.size().max(1))
        .and_then(|s| s.name().ok())
        // Go's linker names assembly (ABI0) functions `NAME.abi0` in the ELF symbol table
        // only; the function is NAME.
        .map(|n| n.strip_suffix(".abi0").unwrap_or(n).to_string())
}

#[test]
fn frames_are_named_as_the_binarys_symbol_table() {
    let c = load();
    let r = replay(&c, Vec::new());
    let p = &r.profile;
    let bytes = std::fs::read(data("hotloop")).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    let (mut checked, mut hot, mut leaves) = (0, 0, 0);
    for s in &p.samples {
        let mut first_user = true;
        for &id in &s.location_ids {
            let loc = p.location(id);
            if loc.mapping_id == 0 {
                continue;
            }
            let m = &p.mappings[loc.mapping_id as usize - 1];
            assert!(m.file.ends_with("/hotloop"), "a mapping of {}", m.file);
            // A static Go binary: the address in the process is the link address.
            let expected = symbol_at(&elf, loc.address)
                .unwrap_or_else(|| panic!("no symbol at {:#x}", loc.address));
            let physical = loc.lines.last().expect("a named frame");
            assert_eq!(p.function(physical.function_id).system_name, expected);
            checked += 1;
            if first_user {
                leaves += s.values[0];
                if expected == "main.hotA" || expected == "main.hotB" {
                    hot += s.values[0];
                }
                first_user = false;
            }
        }
    }
    eprintln!("{checked} frames checked; {hot} of {leaves} leaf samples in hotA/hotB");
    assert!(checked > 20, "{checked} frames");
    assert!(
        hot as f64 > 0.8 * leaves as f64,
        "{hot} of {leaves} samples in hotA or hotB"
    );
}

struct Collect(Arc<Mutex<Vec<(u64, i64)>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn profile(&mut self, p: &SeriesProfile<'_>) -> Result<(), SinkError> {
        self.0.lock().unwrap().push((p.seq, totals(p.profile).0));
        Ok(())
    }
}

/// Cuts replay where the recording cut: a window after every batch here, which add up.
#[test]
fn windows_are_cut_where_the_capture_says_and_add_up() {
    let mut c = load();
    let mut records = Vec::new();
    for r in c.records.drain(..) {
        let batch = matches!(&r, Record::Batch(b) if !b.last);
        records.push(r);
        if batch {
            records.push(Record::Cut);
        }
    }
    c.records = records;
    let windows = Arc::new(Mutex::new(Vec::new()));
    let r = replay(&c, vec![Box::new(Collect(windows.clone()))]);
    let windows = windows.lock().unwrap();
    let per_batch: Vec<i64> = batches(&c)
        .map(|b| b.counts.iter().map(|c| c.count as i64).sum())
        .collect();
    // The last batch closes the last window together with the one before it.
    let mut expected: Vec<i64> = per_batch[..per_batch.len() - 1].to_vec();
    *expected.last_mut().unwrap() += per_batch[per_batch.len() - 1];
    let expected: Vec<i64> = expected.into_iter().filter(|&n| n > 0).collect();
    let got: Vec<i64> = windows.iter().map(|w| w.1).collect();
    assert_eq!(got, expected, "samples per window");
    assert_eq!(totals(&r.profile).0, per_batch.iter().sum::<i64>());
}

/// A binary that is not the one recorded is refused by its build id: its frames stay
/// unnamed (and it is said why) rather than named from the wrong file.
#[test]
fn a_different_binary_is_refused_by_build_id() {
    let c = load();
    let r = capture::replay(
        &c,
        Box::new(|_| PathBuf::from(env!("CARGO_BIN_EXE_gprof-bpf"))),
        Vec::new(),
    )
    .expect("replays");
    assert!(
        r.notes.iter().any(|n| n.contains("build id")),
        "notes: {:?}",
        r.notes
    );
    assert!(
        !r.profile
            .mappings
            .iter()
            .any(|m| m.file.ends_with("/hotloop")),
        "{:?}",
        r.profile.mappings
    );
}

fn gz(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

#[test]
fn bad_captures_are_typed_errors() {
    let err = |bytes: &[u8]| Capture::parse(bytes).expect_err("must not parse");
    assert!(matches!(err(b""), CaptureError::Empty));
    assert!(matches!(err(b"{\"Header\":1}"), CaptureError::NotGzip));
    assert!(matches!(err(&gz(b"hello\n")), CaptureError::NoHeader));
    let header = |v: u32| {
        format!(
            "{{\"Header\":{{\"format\":\"gprof-bpf-capture\",\"version\":{v},\"frequency_hz\":99,\
             \"all\":false,\"window_ms\":null,\"keep_total\":true}}}}\n"
        )
    };
    assert!(matches!(
        err(&gz(header(2).as_bytes())),
        CaptureError::Version { found: 2 }
    ));
    let bad_line = format!("{}\"Cut\"\n{{\"Batch\":7}}\n", header(1));
    assert!(matches!(
        err(&gz(bad_line.as_bytes())),
        CaptureError::Malformed { line: 3, .. }
    ));
    let bad_stats = format!(
        "{}{{\"Batch\":{{\"seq\":1,\"counts\":[],\"user_stacks\":[],\"kernel_stacks\":[],\
         \"kernel_stats\":[1],\"last\":true}}}}\n",
        header(1)
    );
    assert!(matches!(
        err(&gz(bad_stats.as_bytes())),
        CaptureError::Malformed { line: 2, .. }
    ));
    // Cut short: the gzip stream ends early.
    let whole = std::fs::read(data("hotloop.capture.gz")).unwrap();
    assert!(Capture::parse(&whole[..whole.len() / 2]).is_err());
    // Parses, but ends before the last batch: the replay says so.
    let ok = Capture::parse(&gz(header(1).as_bytes())).expect("a header alone parses");
    let e = capture::replay(&ok, files(), Vec::new())
        .err()
        .expect("no last batch");
    assert!(e.to_string().contains("before the last batch"), "{e}");
}
