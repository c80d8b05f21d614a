//! File, line and inlined frames of non-Go code (C in cgo binaries, libraries built with
//! debug info) from DWARF, through gimli's addr2line.

use std::sync::Arc;

use gimli::{EndianReader, RunTimeEndian};
use object::{CompressionFormat, Object as _, ObjectSection as _};

/// The bytes DWARF is read from: the file itself (a mapping; sections are read in place, so
/// they cost page cache, not heap) or, for a compressed section, its inflated copy.
#[derive(Clone)]
pub struct Bytes(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Bytes {
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        Bytes(owner)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

// SAFETY: the bytes are in the allocation the Arc owns (a read-only file mapping or a boxed
// buffer), which neither moving nor cloning the Arc moves, and which lives as long as any
// clone does.
unsafe impl gimli::StableDeref for Bytes {}
// SAFETY: as above: a clone derefs to the same, still-live bytes.
unsafe impl gimli::CloneStableDeref for Bytes {}

type Reader = EndianReader<RunTimeEndian, Bytes>;

/// Files with more DWARF than this are symbolized from ELF symbols instead: addr2line parses
/// every unit's abbreviations up front, about a third of the DWARF's size in heap (measured:
/// 12 MiB for a 38 MiB Rust debug build, which `--all` meets in the agent itself).
pub const DWARF_BUDGET_BYTES: u64 = 16 << 20;

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
    /// Reads the DWARF of `data` (the whole file) in place; only compressed sections are
    /// inflated into memory. None when the file has no usable debug info, or more than
    /// [`DWARF_BUDGET_BYTES`] of it (its frames are then named from ELF symbols).
    pub fn parse(data: Bytes) -> Option<Self> {
        let whole = data.clone();
        let file = object::File::parse(&*whole).ok()?;
        file.section_by_name(".debug_info")?;
        let debug_bytes: u64 = file
            .sections()
            .filter(|s| {
                s.name()
                    .is_ok_and(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_"))
            })
            .map(|s| s.size())
            .sum();
        if debug_bytes > DWARF_BUDGET_BYTES {
            return None;
        }
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let empty = Bytes(Arc::new(Vec::<u8>::new()));
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let Some(section) = file.section_by_name(id.name()) else {
                return Ok(EndianReader::new(empty.clone(), endian));
            };
            if let Ok(r) = section.compressed_file_range()
                && r.format == CompressionFormat::None
                && let (Ok(start), Ok(len)) = (
                    usize::try_from(r.offset),
                    usize::try_from(r.uncompressed_size),
                )
                && start.checked_add(len).is_some_and(|end| end <= data.len())
            {
                return Ok(EndianReader::new(data.clone(), endian).range(start..start + len));
            }
            let inflated = section
                .uncompressed_data()
                .map(|d| d.into_owned())
                .unwrap_or_default();
            Ok(EndianReader::new(Bytes(Arc::new(inflated)), endian))
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
