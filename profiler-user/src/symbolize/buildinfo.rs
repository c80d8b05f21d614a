//! Go build information from an ELF file: Go version, module path and main package path from
//! `.go.buildinfo` (§1.5 of docs/gopclntab.md), the Go build id (`.note.go.buildid`) and the
//! GNU build id. Pure function over the file bytes; never panics.

pub use super::gopclntab::Error;
use super::gopclntab::elf::{Elf, va_bytes};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. "go1.27.3".
    pub go_version: Option<String>,
    /// The main module path (`mod` line of the module info).
    pub module_path: Option<String>,
    /// The main package path (`path` line of the module info).
    pub main_path: Option<String>,
    /// The Go build id (`.note.go.buildid`).
    pub go_build_id: Option<String>,
    /// The GNU build id, lower-case hex.
    pub gnu_build_id: Option<String>,
}

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Strings longer than this are treated as corrupt.
const MAX_STR: u64 = 1 << 20;

/// Reads the build information of an ELF file. Missing pieces are `None`; only a file that
/// is not a supported ELF file is an error.
pub fn read(elf: &[u8]) -> Result<BuildInfo, Error> {
    let e = Elf::parse(elf)?;
    let mut bi = BuildInfo::default();
    if let Some((version, modinfo)) = raw_buildinfo(&e) {
        bi.go_version = Some(version).filter(|v| !v.is_empty());
        if let Some(m) = modinfo
            .map(strip_modinfo_sentinels)
            .map(String::from_utf8_lossy)
        {
            for line in m.lines() {
                let mut f = line.split('\t');
                match (f.next(), f.next()) {
                    (Some("path"), Some(p)) if bi.main_path.is_none() => {
                        bi.main_path = Some(p.to_string())
                    }
                    (Some("mod"), Some(p)) if bi.module_path.is_none() => {
                        bi.module_path = Some(p.to_string())
                    }
                    _ => {}
                }
            }
        }
    }
    if bi.go_version.is_none() {
        bi.go_version = build_version_symbol(&e);
    }
    e.for_each_note(|name, ty, desc| match (name, ty) {
        (b"Go", 4) if bi.go_build_id.is_none() => {
            bi.go_build_id = std::str::from_utf8(desc).ok().map(str::to_string)
        }
        (b"GNU", 3) if bi.gnu_build_id.is_none() => {
            bi.gnu_build_id = Some(desc.iter().map(|b| format!("{b:02x}")).collect())
        }
        _ => {}
    });
    Ok(bi)
}

/// The Go version string of a parsed ELF file (buildinfo, else `runtime.buildVersion`).
pub(crate) fn go_version_elf(e: &Elf<'_>) -> Option<String> {
    raw_buildinfo(e)
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty())
        .or_else(|| build_version_symbol(e))
}

/// The module info is wrapped in 16-byte binary sentinels (debug/buildinfo).
fn strip_modinfo_sentinels(b: &[u8]) -> &[u8] {
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        return &b[16..b.len() - 16];
    }
    b
}

/// Finds the buildinfo header: the `.go.buildinfo` section, else a 16-aligned scan of the
/// writable PT_LOAD segments.
fn header<'d>(e: &Elf<'d>) -> Option<(&'d [u8], u64)> {
    if let Some(s) = e.section(b".go.buildinfo")
        && let Some(d) = e.section_data(&s)
        && d.starts_with(MAGIC)
    {
        return Some((d, s.addr));
    }
    for s in e.segs.iter().filter(|s| s.flags & object::elf::PF_W != 0) {
        let Some(seg) = va_bytes(e.data, &e.segs, s.vaddr, s.filesz) else {
            continue;
        };
        let mut i = (16 - (s.vaddr % 16) as usize) % 16;
        while i + 32 <= seg.len() {
            if seg[i..].starts_with(MAGIC) {
                return Some((&seg[i..], s.vaddr.wrapping_add(i as u64)));
            }
            i += 16;
        }
    }
    None
}

fn uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// (version, modinfo) from the buildinfo blob.
fn raw_buildinfo<'d>(e: &Elf<'d>) -> Option<(String, Option<&'d [u8]>)> {
    let (d, _va) = header(e)?;
    let ptr = *d.get(14)?;
    let flags = *d.get(15)?;
    if flags & 2 != 0 {
        // 1.18+: inline varint-prefixed strings at +32.
        let mut pos = 32usize;
        let mut s = || -> Option<&[u8]> {
            let n = uvarint(d, &mut pos)?;
            if n > MAX_STR {
                return None;
            }
            let b = d.get(pos..pos.checked_add(n as usize)?)?;
            pos += n as usize;
            Some(b)
        };
        let v = std::str::from_utf8(s()?).ok()?.to_string();
        let m = s();
        return Some((v, m));
    }
    // 1.13–1.17: pointers to string headers.
    let be = flags & 1 != 0;
    let rd = |b: &[u8]| -> Option<u64> {
        Some(match (ptr, be) {
            (8, false) => u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            (8, true) => u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            (4, false) => u64::from(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
            (4, true) => u64::from(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    };
    let p = usize::from(ptr);
    let gostr = |hdr_va: u64| -> Option<&'d [u8]> {
        let h = va_bytes(e.data, &e.segs, hdr_va, 2 * ptr as u64)?;
        let (data, len) = (rd(h)?, rd(h.get(p..)?)?);
        if len > MAX_STR {
            return None;
        }
        va_bytes(e.data, &e.segs, data, len)
    };
    let v = std::str::from_utf8(gostr(rd(d.get(16..)?)?)?)
        .ok()?
        .to_string();
    let m = rd(d.get(16 + p..)?).and_then(gostr);
    Some((v, m))
}

/// `runtime.buildVersion` (a Go string variable) for binaries without buildinfo (< 1.13).
fn build_version_symbol(e: &Elf<'_>) -> Option<String> {
    let [va] = e.symbols([b"runtime.buildVersion"]);
    let h = va_bytes(e.data, &e.segs, va?, 16)?;
    let data = u64::from_le_bytes(h[..8].try_into().ok()?);
    let len = u64::from_le_bytes(h[8..16].try_into().ok()?);
    if len > 256 {
        return None;
    }
    let b = va_bytes(e.data, &e.segs, data, len)?;
    std::str::from_utf8(b)
        .ok()
        .filter(|s| s.starts_with("go") || s.starts_with("devel"))
        .map(str::to_string)
}
