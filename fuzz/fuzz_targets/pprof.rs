//! Feeds arbitrary bytes to the pprof decoder (gzipped or raw profile.proto), and renders
//! whatever decodes: `gprof-bpf report` reads files from anywhere.
#![no_main]

use gprof_bpf::report::{self, TextOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = report::decode_pprof(data) {
        let mut out = Vec::new();
        let _ = report::render_text(&profile, &TextOptions::default(), &mut out);
        let _ = report::encode_pprof(&profile);
    }
});
