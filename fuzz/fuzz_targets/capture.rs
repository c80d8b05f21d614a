//! Feeds arbitrary bytes to the capture reader (as they are, and gzipped so that the JSON
//! lines behind the gzip layer are reached), then replays what parses, with every file
//! unopenable: a capture is external bytes, so any input is an error or a profile, never a
//! panic.
#![no_main]

use std::io::Write as _;

use gprof_bpf::capture::{self, Capture, Record};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let Ok(c) = Capture::parse(bytes) else {
        return;
    };
    // Kernel frames would load /proc/kallsyms on every input: replay only user stacks.
    let kernel = c
        .records
        .iter()
        .any(|r| matches!(r, Record::Batch(b) if !b.kernel_stacks.is_empty()));
    if !kernel {
        let _ = capture::replay(&c, Box::new(|_| "/nonexistent".into()), Vec::new());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(data).is_ok()
        && let Ok(bytes) = gz.finish()
    {
        check(&bytes);
    }
});
