//! Feeds arbitrary text to the /proc parsers: maps, kallsyms.
#![no_main]

use gprof_bpf::process::maps;
use gprof_bpf::symbolize::kallsyms::Kallsyms;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(entries) = maps::parse(&text) {
        for e in &entries {
            let _ = e.is_file();
        }
    }
    if let Ok(k) = Kallsyms::parse(text.into_owned()) {
        let _ = k.lookup(u64::MAX);
        let _ = k.lookup(0xffff_ffff_8100_0000);
    }
});
