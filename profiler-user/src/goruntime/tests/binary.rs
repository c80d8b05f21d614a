//! The TLS slot of `g` and the address of `runtime.allgs`, read from real builds of every
//! installed toolchain in every link mode, stripped and not. Oracles:
//! * TLS: −8 by the linux/amd64 ABI of Go's internal linker; for external links, the
//!   `runtime.tlsg` symbol of the unstripped twin placed in the `PT_TLS` block the way the
//!   static TLS model lays it out (`-memsz_aligned + tlsg`, the formula Delve uses);
//! * allgs: the `runtime.allgs` symbol of the unstripped twin (via `object`).

use crate::goruntime::binary;
use gprof_testkit::go;
use gprof_testkit::matrix::{Build, Link};
use object::{Object as _, ObjectSymbol as _};

fn symbol(data: &[u8], name: &str) -> Option<u64> {
    let f = object::File::parse(data).ok()?;
    f.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
}

/// The g slot as the static TLS model places `runtime.tlsg` (external link).
fn tls_oracle(unstripped: &[u8]) -> i64 {
    let f = object::read::elf::ElfFile64::<object::LittleEndian>::parse(unstripped).unwrap();
    let tlsg = symbol(unstripped, "runtime.tlsg").expect("runtime.tlsg in .symtab") as i64;
    use object::read::elf::ProgramHeader as _;
    let e = object::LittleEndian;
    let tls = f
        .elf_program_headers()
        .iter()
        .find(|p| p.p_type(e) == object::elf::PT_TLS)
        .expect("PT_TLS");
    let (vaddr, memsz, align) = (
        tls.p_vaddr(e) as i64,
        tls.p_memsz(e) as i64,
        tls.p_align(e).max(1) as i64,
    );
    let memsz = memsz + ((-vaddr - memsz) & (align - 1));
    -memsz + tlsg
}

fn builds() -> Vec<(Build, String)> {
    let mut out = Vec::new();
    let versions = go::installed(go::MATRIX_VERSIONS);
    for &v in &versions {
        for link in [Link::Internal, Link::Pie, Link::External, Link::PieExternal] {
            for strip in [false, true] {
                if !gprof_testkit::matrix::in_suite(&versions, v, link) {
                    continue;
                }
                out.push((
                    Build::new(v, "amd64", link, strip, false),
                    "parked".to_string(),
                ));
            }
        }
    }
    out
}

fn read(b: &Build, name: &str) -> Option<Vec<u8>> {
    let path = gprof_testkit::require_ok(b.build(name), "fixture build")?;
    Some(std::fs::read(path).unwrap())
}

#[test]
fn g_tls_offset_matches_the_abi_and_the_tls_segment() {
    let mut n = 0;
    for (b, name) in builds() {
        let (Some(data), Some(twin)) = (read(&b, &name), read(&b.unstripped(), &name)) else {
            continue;
        };
        let want = if b.link.cgo() { tls_oracle(&twin) } else { -8 };
        let got = binary::decode_g_tls_offset(&data);
        assert_eq!(
            got.ok(),
            Some(want),
            "{}: {:?}",
            b.label(),
            binary::decode_g_tls_offset(&data)
        );
        n += 1;
    }
    // Static cgo: libc's own TLS shares the block, so the slot is not −8.
    for v in go::installed(&["1.19", "1.27.3"]) {
        for strip in [false, true] {
            let ld = if strip {
                "-ldflags=-linkmode=external -extldflags=-static -s -w"
            } else {
                "-ldflags=-linkmode=external -extldflags=-static"
            };
            let build = |ld: &str| {
                go::build("callers", v, &[ld], &[("CGO_ENABLED", "1")])
                    .map(|p| std::fs::read(p).unwrap())
            };
            let (Some(data), Some(twin)) = (
                gprof_testkit::require_ok(build(ld), "static cgo build"),
                gprof_testkit::require_ok(
                    build("-ldflags=-linkmode=external -extldflags=-static"),
                    "static cgo build",
                ),
            ) else {
                continue;
            };
            let want = tls_oracle(&twin);
            assert_ne!(
                want, -8,
                "go{v} static cgo: the oracle should not be the default"
            );
            assert_eq!(
                binary::decode_g_tls_offset(&data).ok(),
                Some(want),
                "go{v} static strip={strip}"
            );
            n += 1;
        }
    }
    assert!(n > 0 || !gprof_testkit::strict());
}

/// Address `addr` of `from` moved to the same offset of the same-named section of `to`.
fn carry(from: &[u8], to: &[u8], addr: u64) -> u64 {
    use object::ObjectSection as _;
    let (f, t) = (
        object::File::parse(from).unwrap(),
        object::File::parse(to).unwrap(),
    );
    let s = f
        .sections()
        .find(|s| s.address() <= addr && addr < s.address() + s.size())
        .expect("section of the symbol");
    let name = s.name().unwrap();
    let ts = t.section_by_name(name).expect("same section in the twin");
    addr - s.address() + ts.address()
}

#[test]
fn allgs_is_found_with_and_without_symtab() {
    for (b, name) in builds() {
        let (Some(data), Some(twin)) = (read(&b, &name), read(&b.unstripped(), &name)) else {
            continue;
        };
        // `-s -w` can shift the data sections (a smaller .rodata): carry the symbol over by
        // its offset in its section.
        let want = carry(
            &twin,
            &data,
            symbol(&twin, "runtime.allgs").expect("runtime.allgs in .symtab"),
        );
        let found = binary::find_allgs(&data).unwrap_or_else(|e| panic!("{}: {e}", b.label()));
        assert_eq!(found.allgs, want, "{}", b.label());
        assert_eq!(found.from_symtab, !b.strip, "{}", b.label());
        if !b.strip {
            assert_eq!(
                found.allglen,
                symbol(&twin, "runtime.allglen"),
                "{}",
                b.label()
            );
        }
        // The decoder alone, on both twins.
        let decoded = binary::decode_allgs(&data).unwrap_or_else(|e| panic!("{}: {e}", b.label()));
        assert_eq!(decoded.allgs, want, "{} (decoded)", b.label());
    }
}

#[test]
fn garbage_gives_errors() {
    for data in [&b""[..], b"\x7fELF", &[0u8; 4096][..]] {
        assert!(binary::decode_g_tls_offset(data).is_err());
        assert!(binary::find_allgs(data).is_err());
    }
}
