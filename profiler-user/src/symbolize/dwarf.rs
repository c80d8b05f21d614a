//! File, line and inlined frames of non-Go code (C in cgo binaries, libraries built with
//! debug info) from DWARF, through gimli's addr2line.

use std::sync::Arc;

use gimli::{EndianArcSlice, RunTimeEndian};
use object::{Object as _, ObjectSection as _};

type Reader = EndianArcSlice<RunTimeEndian>;

/// One source frame, innermost first in lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DwarfFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// The context caches parsed units lazily (interior mutability), hence the mutex: opened
/// files are shared, and may be shared across threads.
pub struct DwarfSymbols {
    ctx: std::sync::Mutex<addr2line::Context<Reader>>,
}

impl DwarfSymbols {
    /// Loads the DWARF sections (copied once, only for files that need them). None when the
    /// file has no usable debug info.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let file = object::File::parse(data).ok()?;
        file.section_by_name(".debug_info")?;
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let bytes: Arc<[u8]> = file
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
                .map(|d| Arc::from(&*d))
                .unwrap_or_else(|| Arc::from(&[][..]));
            Ok(EndianArcSlice::new(bytes, endian))
        };
        let dwarf = gimli::Dwarf::load(load).ok()?;
        let ctx = addr2line::Context::from_dwarf(dwarf).ok()?;
        Some(DwarfSymbols {
            ctx: std::sync::Mutex::new(ctx),
        })
    }

    /// Frames at link-time address `addr`, innermost first; empty when DWARF does not cover it.
    pub fn frames(&self, addr: u64) -> Vec<DwarfFrame> {
        let mut out = Vec::new();
        let ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(mut frames) = ctx.find_frames(addr).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(f)) = frames.next() {
            let function = f
                .function
                .as_ref()
                .and_then(|n| n.demangle().ok().map(|d| d.into_owned()))
                .unwrap_or_default();
            let (file, line) = f
                .location
                .map(|l| (l.file.unwrap_or("").to_string(), l.line.unwrap_or(0)))
                .unwrap_or_default();
            if function.is_empty() && file.is_empty() {
                continue;
            }
            out.push(DwarfFrame {
                function,
                file,
                line,
            });
        }
        out
    }
}
