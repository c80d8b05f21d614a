//! Process discovery: which file and link-time address a sampled address belongs to.
//!
//! A process is snapshotted once per image (pid + exec generation) at its first sample or
//! fork/exec event; every mapped executable is opened then and kept open (mmap), so a process
//! that exits or execs later in the recording still symbolizes. Files are opened through
//! `/proc/PID/map_files/` (works for deleted files and other mount namespaces), falling back to
//! `/proc/PID/root/PATH`. Opened files are shared by (device, inode): a thousand processes of
//! one binary share one reader.

pub mod maps;
pub mod registry;
pub mod source;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;
use object::{Object as _, ObjectSegment as _};

use crate::symbolize::buildinfo::{self, BuildInfo};
use crate::symbolize::dwarf::{Bytes, DwarfSymbols};
use crate::symbolize::elf::ElfSymbols;
use crate::symbolize::gopclntab::GoTable;
pub use maps::MapEntry;
pub use source::{LiveProcs, ProcessSource};

/// Why a file could not be opened as an object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("opening {file}: {source}")]
    Open {
        file: String,
        source: std::io::Error,
    },
    #[error("mapping {file}: {source}")]
    Map {
        file: String,
        source: std::io::Error,
    },
    #[error("anonymous map: {0}")]
    Copy(std::io::Error),
    #[error("{path}: not an ELF file: {detail}")]
    NotElf { path: String, detail: String },
    #[error("{path}: build id {found:?}, the capture recorded {expected:?}")]
    BuildIdMismatch {
        path: String,
        expected: String,
        found: String,
    },
    /// A failure recorded in a capture, replayed as it was reported.
    #[error("{error}")]
    Captured { reason: &'static str, error: String },
}

impl ObjectError {
    /// A stable name for counting.
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectError::Open { source, .. } | ObjectError::Map { source, .. } => {
                match source.kind() {
                    std::io::ErrorKind::NotFound => "gone",
                    std::io::ErrorKind::PermissionDenied => "denied",
                    _ => "unreadable",
                }
            }
            ObjectError::Copy(_) => "unreadable",
            ObjectError::NotElf { .. } => "not ELF",
            ObjectError::BuildIdMismatch { .. } => "build id mismatch",
            ObjectError::Captured { reason, .. } => reason,
        }
    }

    /// The reason of [`ObjectError::reason`] named `name` (from a capture).
    pub fn reason_named(name: &str) -> &'static str {
        [
            "gone",
            "denied",
            "unreadable",
            "not ELF",
            "build id mismatch",
        ]
        .into_iter()
        .find(|r| *r == name)
        .unwrap_or("unreadable")
    }
}

/// A read-only mapping of a whole file, cheap to clone.
#[derive(Clone)]
pub struct SharedBytes(Arc<Mmap>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl SharedBytes {
    pub fn open(path: &Path) -> Result<Self, ObjectError> {
        let file = File::open(path).map_err(|source| ObjectError::Open {
            file: path.display().to_string(),
            source,
        })?;
        // SAFETY: the mapping is read-only; a file truncated under us would fault, which the
        // kernel does not do for executables that are running (ETXTBSY) - the files we map.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| ObjectError::Map {
            file: path.display().to_string(),
            source,
        })?;
        Ok(SharedBytes(Arc::new(map)))
    }

    /// A private read-only copy of `bytes` (for images that are not files: the vDSO).
    pub fn copy_of(bytes: &[u8]) -> Result<Self, ObjectError> {
        let mut map = memmap2::MmapMut::map_anon(bytes.len().max(1)).map_err(ObjectError::Copy)?;
        map[..bytes.len()].copy_from_slice(bytes);
        Ok(SharedBytes(Arc::new(
            map.make_read_only().map_err(ObjectError::Copy)?,
        )))
    }
}

/// The kernel's vDSO as this process maps it: every process on the host maps the same image
/// (the same kernel), so ours names theirs (`__vdso_clock_gettime`, which Go's nanotime calls).
fn own_vdso() -> Option<ObjectFile> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
    if base == 0 {
        return None;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let entry = maps::parse(&maps)
        .ok()?
        .into_iter()
        .find(|e| e.path == "[vdso]" && e.start == base)?;
    let len = usize::try_from(entry.end - entry.start).ok()?;
    // SAFETY: [start, end) is our own vDSO mapping, readable for the life of the process.
    let bytes = unsafe { std::slice::from_raw_parts(base as *const u8, len) };
    ObjectFile::from_data("[vdso]".into(), SharedBytes::copy_of(bytes).ok()?).ok()
}

/// A PT_LOAD segment: file range → link-time address.
#[derive(Clone, Copy, Debug)]
pub struct LoadSegment {
    pub file_offset: u64,
    pub file_size: u64,
    pub vaddr: u64,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the process is gone")]
    Gone,
    #[error("permission denied")]
    Denied,
    #[error("{0}")]
    Unreadable(String),
}

impl ReadError {
    pub(crate) fn from_io(e: &std::io::Error, what: &str) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::Gone,
            std::io::ErrorKind::PermissionDenied => ReadError::Denied,
            _ => ReadError::Unreadable(format!("{what}: {e}")),
        }
    }
}

/// Identifies an opened file for the lifetime of the agent (never reused), so caches can be
/// keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u64);

static NEXT_OBJECT_ID: AtomicU64 = AtomicU64::new(1);

/// An opened executable or shared library.
pub struct ObjectFile {
    pub id: ObjectId,
    /// The path as the process saw it.
    pub path: String,
    pub data: SharedBytes,
    pub segments: Vec<LoadSegment>,
    pub build_info: BuildInfo,
    /// Go's pclntab, when this is a Go binary.
    pub go: Option<GoTable<SharedBytes>>,
    /// Why this is not treated as Go code (for notes), when `go` is None.
    pub go_error: Option<String>,
    elf_symbols: OnceLock<ElfSymbols<SharedBytes>>,
    dwarf: OnceLock<Option<DwarfSymbols>>,
    /// The TLS slot of `g` (decoded once per file: every process of the binary shares it).
    g_tls: OnceLock<Result<i64, String>>,
}

impl ObjectFile {
    /// The offset of the `g` slot from the thread pointer (see
    /// [`crate::goruntime::binary::g_tls_offset`]), found once per file.
    pub fn g_tls_offset(&self) -> Result<i64, String> {
        self.g_tls
            .get_or_init(|| {
                crate::goruntime::binary::g_tls_offset(self.data.as_ref())
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    pub fn open(path: String, file: &Path) -> Result<Self, ObjectError> {
        Self::from_data(path, SharedBytes::open(file)?)
    }

    pub fn from_data(path: String, data: SharedBytes) -> Result<Self, ObjectError> {
        let elf = object::File::parse(data.as_ref()).map_err(|e| ObjectError::NotElf {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let segments = elf
            .segments()
            .map(|s| {
                let (file_offset, file_size) = s.file_range();
                LoadSegment {
                    file_offset,
                    file_size,
                    vaddr: s.address(),
                }
            })
            .collect();
        // Only Go binaries get the Go readers: on other files (libc, a 100 MB C++ library)
        // their fallback scans would read every page for nothing.
        let (build_info, go, go_error) = if may_be_go(&elf) {
            let build_info = buildinfo::read(data.as_ref()).unwrap_or_default();
            match GoTable::parse(data.clone()) {
                Ok(t) => (build_info, Some(t), None),
                Err(e) => (build_info, None, Some(e.to_string())),
            }
        } else {
            let gnu_build_id = elf
                .build_id()
                .ok()
                .flatten()
                .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
            (
                BuildInfo {
                    gnu_build_id,
                    ..Default::default()
                },
                None,
                Some("not a Go binary".into()),
            )
        };
        Ok(ObjectFile {
            id: ObjectId(NEXT_OBJECT_ID.fetch_add(1, Ordering::Relaxed)),
            path,
            data,
            segments,
            build_info,
            go,
            go_error,
            elf_symbols: OnceLock::new(),
            dwarf: OnceLock::new(),
            g_tls: OnceLock::new(),
        })
    }

    /// Link-time address of file offset `off`, through the PT_LOAD that contains it.
    pub fn link_address(&self, off: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| off >= s.file_offset && off < s.file_offset + s.file_size)
            .map(|s| off - s.file_offset + s.vaddr)
    }

    /// ELF symbols (.symtab + .dynsym), parsed on first use.
    pub fn elf_symbols(&self) -> &ElfSymbols<SharedBytes> {
        self.elf_symbols
            .get_or_init(|| ElfSymbols::parse(self.data.clone()))
    }

    /// DWARF line tables, loaded on first use (None without debug info).
    pub fn dwarf(&self) -> Option<&DwarfSymbols> {
        self.dwarf
            .get_or_init(|| DwarfSymbols::parse(Bytes::new(Arc::new(self.data.clone()))))
            .as_ref()
    }

    /// The build id to show in profiles: GNU build id, else Go's.
    pub fn build_id(&self) -> String {
        self.build_info
            .gnu_build_id
            .clone()
            .or_else(|| self.build_info.go_build_id.clone())
            .unwrap_or_default()
    }
}

/// Whether a file may be a Go binary: Go's linker always emits the build-id note and the
/// buildinfo section (and, depending on version and link mode, `.gopclntab` or `.go.module`).
/// A file without section headers at all (sstrip'd) cannot tell, so it gets the full search.
fn may_be_go(elf: &object::File<'_>) -> bool {
    use object::ObjectSection as _;
    const GO_SECTIONS: [&str; 5] = [
        ".note.go.buildid",
        ".go.buildinfo",
        ".gopclntab",
        ".data.rel.ro.gopclntab",
        ".go.module",
    ];
    let mut sections = elf.sections().peekable();
    sections.peek().is_none() || sections.any(|s| s.name().is_ok_and(|n| GO_SECTIONS.contains(&n)))
}

/// Opened files shared by every process that maps them. A file no snapshot maps any more is
/// closed at the next [`ObjectCache::evict_unused`] (a window that still needs it holds its
/// own reference).
#[derive(Default)]
pub struct ObjectCache {
    by_inode: HashMap<(u32, u32, u64), Arc<ObjectFile>>,
    failed: HashMap<(u32, u32, u64), String>,
    /// Our own copy of the vDSO (read on first use; None if it could not be read).
    vdso: Option<Option<Arc<ObjectFile>>>,
    pub opened: u64,
    pub hits: u64,
    pub evicted: u64,
    /// Files that could not be opened, by reason ([`ObjectError::reason`]).
    pub failures: HashMap<&'static str, u64>,
}

/// Files that could not be opened are remembered (not retried) up to this many.
const MAX_FAILED: usize = 4096;

impl ObjectCache {
    /// The vDSO image, shared by every process.
    fn vdso(&mut self) -> Option<Arc<ObjectFile>> {
        self.vdso
            .get_or_insert_with(|| own_vdso().map(Arc::new))
            .clone()
    }

    /// Closes the files that only the cache still references.
    pub fn evict_unused(&mut self) {
        let before = self.by_inode.len();
        self.by_inode.retain(|_, o| Arc::strong_count(o) > 1);
        self.evicted += (before - self.by_inode.len()) as u64;
        if self.failed.len() > MAX_FAILED {
            self.failed.clear();
        }
    }

    /// Files open now.
    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }

    fn get(
        &mut self,
        pid: u32,
        entry: &MapEntry,
        source: &mut dyn ProcessSource,
    ) -> Result<Arc<ObjectFile>, String> {
        let key = (entry.dev.0, entry.dev.1, entry.inode);
        if let Some(o) = self.by_inode.get(&key) {
            self.hits += 1;
            return Ok(o.clone());
        }
        if let Some(e) = self.failed.get(&key) {
            return Err(e.clone());
        }
        let path = entry.path.trim_end_matches(" (deleted)");
        match source.open(pid, entry) {
            Ok(o) => {
                self.opened += 1;
                let o = Arc::new(o);
                self.by_inode.insert(key, o.clone());
                Ok(o)
            }
            Err(e) => {
                *self.failures.entry(e.reason()).or_default() += 1;
                let e = format!("{path}: {e}");
                // Remember only what is wrong with the file itself: when the process is gone
                // (a short-lived one), the path through /proc/PID failed, not the file, and
                // the next process that maps it must try again.
                if source.alive(pid) {
                    self.failed.insert(key, e.clone());
                }
                Err(e)
            }
        }
    }
}

/// A mapping of a process with its opened file.
#[derive(Clone)]
pub struct Mapped {
    pub entry: MapEntry,
    pub object: Option<Arc<ObjectFile>>,
}

/// Everything needed to symbolize one image of one process, taken while it was alive.
#[derive(Clone)]
pub struct ProcessSnapshot {
    pub pid: u32,
    pub generation: u32,
    pub comm: String,
    /// Mappings of executable file-backed memory, sorted by start.
    pub mappings: Vec<Mapped>,
    /// Files that could not be opened (reported as notes).
    pub errors: Vec<String>,
}

/// Where an address falls in a snapshot.
pub struct Resolved<'a> {
    pub mapping_index: usize,
    pub mapped: &'a Mapped,
    pub object: &'a Arc<ObjectFile>,
    /// The link-time address (what symbol tables and pclntab use).
    pub link_address: u64,
}

impl ProcessSnapshot {
    /// Reads `/proc/PID/maps` and opens every executable mapping.
    pub fn take(
        pid: u32,
        generation: u32,
        source: &mut dyn ProcessSource,
        cache: &mut ObjectCache,
    ) -> Result<Self, ReadError> {
        let text = source.maps(pid)?;
        let comm = source.comm(pid).unwrap_or_default();
        let entries = maps::parse(&text)
            .map_err(|e| ReadError::Unreadable(format!("/proc/{pid}/maps: {e}")))?;
        let mut mappings = Vec::new();
        let mut errors = Vec::new();
        for entry in entries.into_iter().filter(|e| e.executable) {
            let object = if entry.is_file() {
                match cache.get(pid, &entry, source) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        if !errors.contains(&e) {
                            errors.push(e);
                        }
                        None
                    }
                }
            } else if entry.path == "[vdso]" {
                cache.vdso()
            } else {
                None
            };
            mappings.push(Mapped { entry, object });
        }
        mappings.sort_by_key(|m| m.entry.start);
        Ok(ProcessSnapshot {
            pid,
            generation,
            comm,
            mappings,
            errors,
        })
    }

    /// Whether `addr` is in an executable mapping (file-backed or not): a return address
    /// anywhere else is not one (a frame-pointer walk through code without frame pointers).
    pub fn is_executable(&self, addr: u64) -> bool {
        let i = self.mappings.partition_point(|m| m.entry.start <= addr);
        i > 0 && addr < self.mappings[i - 1].entry.end
    }

    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let i = self
            .mappings
            .partition_point(|m| m.entry.start <= addr)
            .checked_sub(1)?;
        let mapped = &self.mappings[i];
        if addr >= mapped.entry.end {
            return None;
        }
        let object = mapped.object.as_ref()?;
        let file_offset = addr - mapped.entry.start + mapped.entry.offset;
        let link_address = object.link_address(file_offset)?;
        Some(Resolved {
            mapping_index: i,
            mapped,
            object,
            link_address,
        })
    }
}
