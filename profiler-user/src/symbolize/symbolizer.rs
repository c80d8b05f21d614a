//! One seam over the symbol sources, with a cache shared by every process and window.
//!
//! A user frame is looked up in the sources of its file in order - Go's pclntab, then DWARF,
//! then ELF symbols - and the first that knows the address answers; the answer is cached per
//! `(file, link address, lookup kind)`, so N processes of one binary cost one lookup, and an
//! agent pays for a hot function once, not once per window. Kernel frames come from kallsyms,
//! reloaded when the set of modules changes.

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::gopclntab::{Frame, PcKind};
use super::kallsyms::Kallsyms;
use crate::process::{ObjectFile, ObjectId};
use crate::profile::Function;

/// One frame of a symbolized address (several when calls were inlined), innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymLine {
    pub function: Arc<Function>,
    pub line: i64,
}

/// What a source says of an address.
pub enum Lookup {
    /// These frames, innermost first.
    Found,
    /// The address is this source's code, but the frame is elided as the Go runtime elides
    /// it (a wrapper function): the stack shows no frame for it.
    Elided,
    /// Not this source's address.
    NotFound,
}

/// A way of naming addresses of a file.
pub trait SymbolSource: Send + Sync {
    fn name(&self) -> &'static str;
    /// Appends the frames of `link` (a link-time address) to `out`.
    fn lookup(
        &self,
        object: &ObjectFile,
        link: u64,
        kind: PcKind,
        callee_panics: bool,
        out: &mut Vec<SymLine>,
    ) -> Lookup;
}

fn function(name: String, file: &str, start_line: i64) -> Arc<Function> {
    Arc::new(Function {
        system_name: name.clone(),
        name,
        filename: file.to_string(),
        start_line,
    })
}

/// The address to look a caller up at: the call instruction, inside the calling line.
fn call_site(link: u64, kind: PcKind) -> u64 {
    if kind == PcKind::Return {
        link.saturating_sub(1)
    } else {
        link
    }
}

/// Go's pclntab: names, lines, inlined frames, wrapper elision as the runtime's traceback.
pub struct GoSource;

impl SymbolSource for GoSource {
    fn name(&self) -> &'static str {
        "gopclntab"
    }

    fn lookup(
        &self,
        object: &ObjectFile,
        link: u64,
        kind: PcKind,
        callee_panics: bool,
        out: &mut Vec<SymLine>,
    ) -> Lookup {
        let Some(go) = &object.go else {
            return Lookup::NotFound;
        };
        let mut frames: Vec<Frame<'_>> = Vec::new();
        // Wrapper frames are elided as the runtime does, unless the callee panics.
        let callee = callee_panics.then_some("runtime.gopanic");
        if go
            .frames_with_callee(link, kind, callee, &mut frames)
            .is_err()
        {
            return Lookup::NotFound;
        }
        if frames.is_empty() {
            // A Go function whose every frame was elided (a wrapper): runtime/pprof shows no
            // frame for it, and neither do we (no nameless address either).
            return match go.func_at(call_site(link, kind)) {
                Ok(Some(_)) => Lookup::Elided,
                _ => Lookup::NotFound,
            };
        }
        out.extend(frames.iter().map(|fr| SymLine {
            function: function(fr.function.to_string(), fr.file, i64::from(fr.start_line)),
            line: i64::from(fr.line),
        }));
        Lookup::Found
    }
}

/// DWARF line tables of non-Go code (file, line, inlined frames).
pub struct DwarfSource;

impl SymbolSource for DwarfSource {
    fn name(&self) -> &'static str {
        "dwarf"
    }

    fn lookup(
        &self,
        object: &ObjectFile,
        link: u64,
        kind: PcKind,
        _callee_panics: bool,
        out: &mut Vec<SymLine>,
    ) -> Lookup {
        let Some(d) = object.dwarf() else {
            return Lookup::NotFound;
        };
        let frames = d.frames(call_site(link, kind));
        if frames.is_empty() {
            return Lookup::NotFound;
        }
        out.extend(frames.into_iter().map(|f| SymLine {
            function: function(f.function, &f.file, 0),
            line: i64::from(f.line),
        }));
        Lookup::Found
    }
}

/// ELF symbol tables (.symtab, .dynsym), names demangled as perf and pprof show them.
pub struct ElfSource;

impl SymbolSource for ElfSource {
    fn name(&self) -> &'static str {
        "elf"
    }

    fn lookup(
        &self,
        object: &ObjectFile,
        link: u64,
        kind: PcKind,
        _callee_panics: bool,
        out: &mut Vec<SymLine>,
    ) -> Lookup {
        let Some((name, _)) = object.elf_symbols().lookup(call_site(link, kind)) else {
            return Lookup::NotFound;
        };
        let name = ::addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned();
        out.push(SymLine {
            function: function(name, "", 0),
            line: 0,
        });
        Lookup::Found
    }
}

/// Cache hit and miss counts, for the agent's metrics and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub capacity: usize,
}

type CacheKey = (ObjectId, u64, PcKind, bool);

pub struct Symbolizer {
    sources: Vec<Box<dyn SymbolSource>>,
    cache: LruCache<CacheKey, Arc<[SymLine]>>,
    kallsyms: Option<Kallsyms>,
    /// /proc/modules when kallsyms was read: reloaded when it changes.
    modules: String,
    hits: u64,
    misses: u64,
    scratch: Vec<SymLine>,
}

/// Default capacity of the frame cache (entries; each is a few hundred bytes).
pub const DEFAULT_CACHE_ENTRIES: usize = 64 * 1024;

impl Default for Symbolizer {
    fn default() -> Self {
        Symbolizer::new(DEFAULT_CACHE_ENTRIES)
    }
}

impl Symbolizer {
    pub fn new(cache_entries: usize) -> Self {
        Symbolizer {
            sources: vec![
                Box::new(GoSource),
                Box::new(DwarfSource),
                Box::new(ElfSource),
            ],
            cache: LruCache::new(NonZeroUsize::new(cache_entries.max(1)).expect("max(1)")),
            kallsyms: None,
            modules: String::new(),
            hits: 0,
            misses: 0,
            scratch: Vec::new(),
        }
    }

    /// Forgets every cached frame (memory pressure).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
        self.scratch = Vec::new();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            entries: self.cache.len(),
            capacity: self.cache.cap().get(),
        }
    }

    /// The frames of a user address; empty when the frame is elided. Unknown addresses get
    /// `{file}+{offset}`, the convention of perf and pprof for nameless code.
    pub fn user(
        &mut self,
        object: &ObjectFile,
        link: u64,
        kind: PcKind,
        callee_panics: bool,
    ) -> Arc<[SymLine]> {
        let key = (object.id, link, kind, callee_panics);
        if let Some(lines) = self.cache.get(&key) {
            self.hits += 1;
            return lines.clone();
        }
        self.misses += 1;
        self.scratch.clear();
        let mut elided = false;
        for source in &self.sources {
            match source.lookup(object, link, kind, callee_panics, &mut self.scratch) {
                Lookup::Found => break,
                Lookup::Elided => {
                    elided = true;
                    break;
                }
                Lookup::NotFound => self.scratch.clear(),
            }
        }
        if self.scratch.is_empty() && !elided {
            let base = object.path.rsplit('/').next().unwrap_or(&object.path);
            self.scratch.push(SymLine {
                function: function(format!("{base}+{link:#x}"), "", 0),
                line: 0,
            });
        }
        let lines: Arc<[SymLine]> = self.scratch.drain(..).collect();
        self.cache.put(key, lines.clone());
        lines
    }

    /// Loads kallsyms if it is not loaded or the kernel's modules changed since.
    pub fn refresh_kallsyms(&mut self) {
        let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        if self.kallsyms.is_none() || modules != self.modules {
            self.kallsyms = Kallsyms::load().ok();
            self.modules = modules;
        }
    }

    /// Installs an already loaded kallsyms (read in the background at the start).
    pub fn set_kallsyms(&mut self, k: Option<Kallsyms>) {
        if k.is_some() {
            self.modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
            self.kallsyms = k;
        }
    }

    pub fn has_kallsyms(&self) -> bool {
        self.kallsyms.is_some()
    }

    /// The name of a kernel address.
    pub fn kernel(&self, pc: u64) -> String {
        self.kallsyms
            .as_ref()
            .and_then(|k| k.lookup(pc))
            .map(str::to_string)
            .unwrap_or_else(|| format!("[kernel] {pc:#x}"))
    }
}
