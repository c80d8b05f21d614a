//! What the executable itself tells about the runtime of a Go program, read from the file
//! (stripped or not): the TLS slot holding the current `g`, and the address of `runtime.allgs`.
//!
//! Both come from `.symtab` when it is there and are otherwise decoded from the machine code of
//! a runtime function located through gopclntab (which `-s -w` keeps). The decoders are tiny and
//! only recognise the instruction forms the Go toolchains emit for these functions (listed at
//! each decoder); anything else is a typed error, never a guess.

use crate::symbolize::gopclntab::{self, GoTable, elf::Elf};

/// Why a runtime fact could not be read from the binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the Go tables: {0}")]
    Pclntab(#[from] gopclntab::Error),
    #[error("{0} is not in the binary's function table")]
    NoFunction(&'static str),
    #[error("the code of {0} is not in the file")]
    NoCode(&'static str),
    #[error("{func}: no instruction form we know loads {what}")]
    Undecoded {
        func: &'static str,
        what: &'static str,
    },
    #[error("{func}: {n} candidate addresses for {what}")]
    Ambiguous {
        func: &'static str,
        what: &'static str,
        n: usize,
    },
    #[error("TLS offset {0} out of range")]
    TlsRange(i64),
}

/// Entry and end (exclusive) of the function `name` (as the runtime names it, e.g.
/// `runtime.stackcheck`) in the function table.
pub fn func_range<D: AsRef<[u8]>>(
    table: &GoTable<D>,
    name: &'static str,
) -> Result<(u64, u64), Error> {
    for i in 0..table.func_count() {
        let entry = table.func_entry(i)?;
        if let Some(f) = table.func_at(entry)?
            && f.entry == entry
            && f.name == name
        {
            return Ok((f.entry, f.end));
        }
    }
    Err(Error::NoFunction(name))
}

/// The code bytes of `name`, at most `max` of them, and their address.
fn code<'d>(
    elf: &Elf<'d>,
    table: &GoTable<&'d [u8]>,
    name: &'static str,
    max: u64,
) -> Result<(u64, &'d [u8]), Error> {
    let (entry, end) = func_range(table, name)?;
    let len = end.saturating_sub(entry).min(max);
    let bytes = elf.va_bytes(entry, len).ok_or(Error::NoCode(name))?;
    Ok((entry, bytes))
}

fn i32_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from(i32::from_le_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

/// The offset of g's TLS slot from fsbase: −8 straight from the program headers when the Go
/// linker linked the binary itself (this runs at every exec, so the common case skips the
/// pclntab), else [`decode_g_tls_offset`].
pub fn g_tls_offset(elf_bytes: &[u8]) -> Result<i64, Error> {
    match internal_tls_g_offset(elf_bytes) {
        Some(off) => Ok(off),
        None => decode_g_tls_offset(elf_bytes),
    }
}

/// −8 when the Go linker linked the binary itself (no PT_INTERP, and its only TLS is the
/// runtime's own 8-byte slot): the slot is right below fsbase. None otherwise.
fn internal_tls_g_offset(elf: &[u8]) -> Option<i64> {
    use object::read::elf::{ElfFile64, ProgramHeader as _};
    let file = ElfFile64::<object::Endianness>::parse(elf).ok()?;
    let e = file.endian();
    let mut tls_ok = true;
    for ph in file.elf_program_headers() {
        match ph.p_type(e) {
            object::elf::PT_INTERP => return None,
            object::elf::PT_TLS if ph.p_memsz(e) > 8 => tls_ok = false,
            _ => {}
        }
    }
    tls_ok.then_some(-8)
}

/// Offset from the thread pointer (`%fs` base) of the TLS slot that holds the current `g`.
///
/// Decoded from the first instruction of `runtime.stackcheck` that reads `%fs`, which every Go
/// version emits in one of these forms (all checked against real builds in the tests):
/// * `mov %fs:disp32, reg` (`64 REX.W 8b /r` with a SIB absolute address) — non-PIE builds,
///   internally linked (−8) or externally linked (−8 alone, −88 or so when libc's own TLS
///   shares the block, e.g. static cgo);
/// * `mov $imm32, r1; mov %fs:(r1), r2` — PIE builds (the linker relaxed the initial-exec
///   load to a constant);
/// * `mov GOT(%rip), r1; mov %fs:(r1), r2` — initial-exec through the GOT: the offset is the
///   64-bit value stored in the file at the GOT slot.
pub fn decode_g_tls_offset(elf_bytes: &[u8]) -> Result<i64, Error> {
    const F: &str = "runtime.stackcheck";
    let elf = Elf::parse(elf_bytes)?;
    let table = GoTable::parse(elf_bytes)?;
    let (entry, b) = code(&elf, &table, F, 64)?;
    let undecoded = || Error::Undecoded {
        func: F,
        what: "the g TLS slot",
    };
    // The register (0..16) a preceding instruction loaded, and the offset it implies.
    let mut pending: Option<(u8, i64)> = None;
    let mut i = 0;
    while i + 4 <= b.len() {
        let rex = b[i];
        // mov $imm32, r64: REX.W(+B) c7 /0 with mod=11.
        if (rex == 0x48 || rex == 0x49) && b[i + 1] == 0xc7 && b[i + 2] & 0xf8 == 0xc0 {
            let reg = (b[i + 2] & 7) | ((rex & 1) << 3);
            let imm = i32_at(b, i + 3).ok_or_else(undecoded)?;
            pending = Some((reg, imm));
            i += 7;
            continue;
        }
        // mov disp32(%rip), r64: REX.W(+R) 8b /r with mod=00 rm=101.
        if (rex == 0x48 || rex == 0x4c) && b[i + 1] == 0x8b && b[i + 2] & 0xc7 == 0x05 {
            let reg = ((b[i + 2] >> 3) & 7) | ((rex & 4) << 1);
            let disp = i32_at(b, i + 3).ok_or_else(undecoded)?;
            let slot = (entry + i as u64 + 7).wrapping_add(disp as u64);
            if let Some(v) = elf.word(slot) {
                pending = Some((reg, v as i64));
            }
            i += 7;
            continue;
        }
        if rex == 0x64 && i + 4 <= b.len() {
            let rex2 = b[i + 1];
            if (rex2 & 0xf8) == 0x48 && b[i + 2] == 0x8b {
                let modrm = b[i + 3];
                let (md, rm) = (modrm >> 6, modrm & 7);
                // %fs:disp32 (SIB, no base, no index).
                if md == 0 && rm == 4 && b.get(i + 4) == Some(&0x25) {
                    let off = i32_at(b, i + 5).ok_or_else(undecoded)?;
                    return check_tls(off);
                }
                // %fs:(reg)
                if md == 0 && rm != 4 && rm != 5 {
                    let base = rm | ((rex2 & 1) << 3);
                    if let Some((reg, off)) = pending
                        && reg == base
                    {
                        return check_tls(off);
                    }
                }
            }
            return Err(undecoded());
        }
        // Anything else before the %fs load: not a form we know.
        return Err(undecoded());
    }
    Err(undecoded())
}

fn check_tls(off: i64) -> Result<i64, Error> {
    // The slot is in the static TLS block, just below the thread pointer.
    if (-4096..0).contains(&off) {
        Ok(off)
    } else {
        Err(Error::TlsRange(off))
    }
}

/// Where `runtime.allgs` (the `[]*g` of every goroutine ever created) lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allgs {
    /// Link-time address of the slice header `{ptr, len, cap}`.
    pub allgs: u64,
    /// Link-time address of `runtime.allglen`, when `.symtab` names it.
    pub allglen: Option<u64>,
    /// True when `allgs` came from `.symtab`, false when decoded from `runtime.allgadd`.
    pub from_symtab: bool,
}

/// Finds `runtime.allgs`: from `.symtab` when present, else from the code of
/// `runtime.allgadd` (`allgs = append(allgs, gp)`), which loads and stores the three words
/// of the slice header with RIP-relative `mov`s. The one address `A` whose `A`, `A+8` and
/// `A+16` are all accessed by RIP-relative 64-bit `mov`s in that function is `allgs`.
pub fn find_allgs(elf_bytes: &[u8]) -> Result<Allgs, Error> {
    let elf = Elf::parse(elf_bytes)?;
    let [allgs, allglen] = elf.symbols([b"runtime.allgs", b"runtime.allglen"]);
    if let Some(allgs) = allgs.filter(|&a| a != 0) {
        return Ok(Allgs {
            allgs,
            allglen,
            from_symtab: true,
        });
    }
    decode_allgadd(elf_bytes, &elf)
}

/// [`find_allgs`] without `.symtab`: the decoder alone.
pub fn decode_allgs(elf_bytes: &[u8]) -> Result<Allgs, Error> {
    decode_allgadd(elf_bytes, &Elf::parse(elf_bytes)?)
}

fn decode_allgadd(elf_bytes: &[u8], elf: &Elf<'_>) -> Result<Allgs, Error> {
    const F: &str = "runtime.allgadd";
    let table = GoTable::parse(elf_bytes)?;
    let (entry, b) = code(elf, &table, F, 4096)?;
    let mut movs = std::collections::BTreeSet::new();
    // REX.W(+R) {8b load, 89 store} /r with mod=00 rm=101 (RIP-relative disp32).
    for i in 0..b.len().saturating_sub(6) {
        if matches!(b[i], 0x48 | 0x4c)
            && matches!(b[i + 1], 0x8b | 0x89)
            && b[i + 2] & 0xc7 == 0x05
            && let Some(disp) = i32_at(b, i + 3)
        {
            movs.insert((entry + i as u64 + 7).wrapping_add(disp as u64));
        }
    }
    let found: Vec<u64> = movs
        .iter()
        .copied()
        .filter(|&a| a % 8 == 0 && movs.contains(&(a + 8)) && movs.contains(&(a + 16)))
        .collect();
    match found[..] {
        [allgs] => Ok(Allgs {
            allgs,
            allglen: None,
            from_symtab: false,
        }),
        [] => Err(Error::Undecoded {
            func: F,
            what: "runtime.allgs",
        }),
        _ => Err(Error::Ambiguous {
            func: F,
            what: "runtime.allgs",
            n: found.len(),
        }),
    }
}
