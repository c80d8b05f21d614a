//! Symbolization bench over a large Go binary: open (mmap + parse) to first answer, every
//! function entry, and 1M random text PCs, all with inline expansion.
//!
//! The binary is `$GPROF_BENCH_GO_BINARY` if set; otherwise `benches/bigprog` is built with the
//! newest installed toolchain (found by the test kit, tests/kit) into the target dir.
//! Run: `AYA_BUILD_SKIP=1 cargo bench -p profiler-user --bench symbolize`.
//!
//! The lookup benches time the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: on a shared machine the thread is often descheduled, which wall time would count.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gprof_bpf::symbolize::gopclntab::{GoTable, PcKind};

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GPROF_BENCH_GO_BINARY") {
        return PathBuf::from(p);
    }
    let ver = gprof_testkit::go::newest()
        .expect("no Go toolchain: set GPROF_BENCH_GO_BINARY to a large Go binary");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/bigprog");
    gprof_testkit::go::build_dir(&src, "bigprog", &ver, &[], &[])
        .expect("go build of benches/bigprog")
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the thread CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let t0 = thread_cpu();
    for _ in 0..iters {
        f();
    }
    thread_cpu() - t0
}

fn open(path: &Path) -> GoTable<memmap2::Mmap> {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the bench binary is not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
    GoTable::parse(map).unwrap()
}

fn bench(c: &mut Criterion) {
    let path = binary();
    let size = std::fs::metadata(&path).unwrap().len();
    let t = open(&path);
    let (lo, hi) = t.text_range();
    eprintln!(
        "bench binary {} ({} MB, {} functions, text {lo:#x}..{hi:#x})",
        path.display(),
        size >> 20,
        t.func_count()
    );
    let probe = t.func_entry(t.func_count() / 2).unwrap() + 1;

    c.bench_function("open_mmap_parse_first_answer", |b| {
        b.iter(|| {
            let t = open(&path);
            let mut out = Vec::new();
            t.frames(black_box(probe), PcKind::Return, &mut out)
                .unwrap();
            black_box(out.len());
        })
    });

    let entries: Vec<u64> = (0..t.func_count())
        .map(|i| t.func_entry(i).unwrap())
        .collect();
    let mut g = c.benchmark_group("lookups");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function(format!("all_{}_function_entries", entries.len()), |b| {
        let mut out = Vec::with_capacity(16);
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0;
                for &pc in &entries {
                    out.clear();
                    t.frames(pc, PcKind::Leaf, &mut out).unwrap();
                    n += out.len();
                }
                black_box(n);
            })
        })
    });
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let pcs: Vec<u64> = (0..1_000_000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + s % (hi - lo)
        })
        .collect();
    g.throughput(Throughput::Elements(pcs.len() as u64));
    g.bench_function("1M_random_text_pcs_inline", |b| {
        let mut out = Vec::with_capacity(16);
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0;
                for &pc in &pcs {
                    out.clear();
                    t.frames(pc, PcKind::Return, &mut out).unwrap();
                    n += out.len();
                }
                black_box(n);
            })
        })
    });
    g.finish();

    // One-shot cold number: open to first answer including page faults of a fresh mapping.
    let t0 = Instant::now();
    let t2 = open(&path);
    let mut out = Vec::new();
    t2.frames(probe, PcKind::Return, &mut out).unwrap();
    eprintln!(
        "open → first answer (warm page cache): {:?}, {} frames",
        t0.elapsed(),
        out.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
