//! Every row of the layout table equals what the DWARF of that toolchain's build says.

use super::dwarf::Types;
use crate::goruntime::layout::{self, LabelsRepr, Layout};
use gprof_testkit::go;

/// The table row derived from DWARF alone.
fn derive(t: &Types, version: (u32, u32)) -> anyhow::Result<Layout> {
    let g = |p: &[&str]| -> anyhow::Result<u32> { Ok(t.offset("runtime.g", p)? as u32) };
    let m = |p: &[&str]| -> anyhow::Result<u32> { Ok(t.offset("runtime.m", p)? as u32) };
    let labels = {
        // runtime/pprof.labelMap: `map[string]string` up to 1.23, a struct embedding
        // `LabelSet{list []label}` from 1.24.
        let e = t.get("runtime/pprof.labelMap")?;
        let target = t.resolve(*t.by_name.get("runtime/pprof.labelMap").unwrap())?;
        if target.tag == gimli::DW_TAG_structure_type {
            // labelMap{LabelSet{list []label}} (1.24, 1.25) or
            // labelMap{label.Set{List []label.Label}} (1.26+): one embedded struct at 0 whose
            // first field, at 0, is a slice of {key, value string}.
            let (_, off, ty) = &target.members[0];
            anyhow::ensure!(*off == 0, "labelMap's first field at {off}");
            let set = t.resolve(ty.unwrap())?;
            let (lname, loff, lty) = &set.members[0];
            anyhow::ensure!(*loff == 0, "{}.{lname} at {loff}", set.name);
            let slice = t.resolve(lty.unwrap())?;
            anyhow::ensure!(
                slice.name.starts_with("[]"),
                "{}.{lname} is {}",
                set.name,
                slice.name
            );
            let elem = t.get(&slice.name[2..])?;
            anyhow::ensure!(
                elem.size == Some(layout::LABEL_SIZE as u64),
                "{}",
                elem.name
            );
            let fields: Vec<(u64, String)> = elem
                .members
                .iter()
                .map(|(_, o, t2)| (*o, self_name(t, *t2)))
                .collect();
            anyhow::ensure!(
                fields == [(0, "string".to_string()), (16, "string".to_string())],
                "{}: {fields:?}",
                elem.name
            );
            LabelsRepr::Slice
        } else {
            let under = t.by_off[&e.ty.unwrap()].name.clone();
            // Go's DWARF names a map[string]string by its runtime shape.
            anyhow::ensure!(
                under == "map[string]string" || under == "*hash<string,string>",
                "labelMap is {under}"
            );
            LabelsRepr::Map
        }
    };
    Ok(Layout {
        version,
        g_stack_lo: g(&["stack", "lo"])?,
        g_stack_hi: g(&["stack", "hi"])?,
        g_m: g(&["m"])?,
        g_sched_sp: g(&["sched", "sp"])?,
        g_sched_pc: g(&["sched", "pc"])?,
        g_sched_bp: g(&["sched", "bp"])?,
        g_syscallsp: g(&["syscallsp"])?,
        g_syscallpc: g(&["syscallpc"])?,
        g_syscallbp: if t.has("runtime.g", "syscallbp") {
            Some(g(&["syscallbp"])?)
        } else {
            None
        },
        g_atomicstatus: g(&["atomicstatus"])?,
        g_goid: g(&["goid"])?,
        g_waitsince: g(&["waitsince"])?,
        g_waitreason: g(&["waitreason"])?,
        g_parent_goid: if t.has("runtime.g", "parentGoid") {
            Some(g(&["parentGoid"])?)
        } else {
            None
        },
        g_gopc: g(&["gopc"])?,
        g_startpc: g(&["startpc"])?,
        g_labels: g(&["labels"])?,
        labels,
        m_procid: m(&["procid"])?,
        m_curg: m(&["curg"])?,
    })
}

/// `runtime.waitReasonStrings` (a `[N]string` in .data) read from the file through `.symtab`.
fn wait_reason_strings(data: &[u8]) -> Vec<String> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let f = object::File::parse(data).unwrap();
    let sym = f
        .symbols()
        .find(|s| s.name() == Ok("runtime.waitReasonStrings"))
        .expect("runtime.waitReasonStrings in .symtab");
    let at = |va: u64, len: u64| -> &[u8] {
        let s = f
            .sections()
            .find(|s| s.address() <= va && va + len <= s.address() + s.size())
            .expect("address in a section");
        let d = s.data().unwrap();
        &d[(va - s.address()) as usize..(va - s.address() + len) as usize]
    };
    let arr = at(sym.address(), sym.size());
    arr.chunks(16)
        .map(|w| {
            let p = u64::from_le_bytes(w[..8].try_into().unwrap());
            let n = u64::from_le_bytes(w[8..].try_into().unwrap());
            if n == 0 {
                String::new()
            } else {
                String::from_utf8(at(p, n).to_vec()).unwrap()
            }
        })
        .collect()
}

fn self_name(t: &Types, ty: Option<usize>) -> String {
    ty.and_then(|o| t.by_off.get(&o))
        .map(|e| e.name.clone())
        .unwrap_or_default()
}

/// Go `major.minor` of a build, from its buildinfo.
fn version_of(elf: &[u8]) -> (u32, u32) {
    let bi = crate::symbolize::buildinfo::read(elf).expect("buildinfo");
    let v = bi.go_version.expect("go version");
    let mut it = v.trim_start_matches("go").split('.');
    let major = it.next().unwrap().parse().unwrap();
    let minor = it
        .next()
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    (major, minor)
}

#[test]
fn unknown_releases_have_no_row() {
    assert!(layout::layout_for((1, 20)).is_none());
    assert!(layout::layout_for((1, 28)).is_none());
    assert!(layout::layout_for((1, 18)).is_none());
}

#[test]
fn every_row_matches_the_dwarf_of_its_toolchain() {
    let versions = go::installed(go::MATRIX_VERSIONS);
    let mut checked = Vec::new();
    for v in versions {
        let Some(path) = gprof_testkit::require_ok(go::build("parked", v, &[], &[]), "build")
        else {
            continue;
        };
        let data = std::fs::read(&path).unwrap();
        let version = version_of(&data);
        let t = Types::parse(&data).unwrap_or_else(|e| panic!("go{v}: DWARF: {e:#}"));
        let derived = derive(&t, version).unwrap_or_else(|e| panic!("go{v}: {e:#}"));
        // The fixed offsets the readers rely on for every version.
        assert_eq!(t.offset("runtime.g", &["stack"]).unwrap(), 0, "go{v}");
        if version <= (1, 23) {
            assert_eq!(
                t.offset("runtime.hmap", &["count"]).unwrap(),
                layout::HMAP_COUNT as u64
            );
            assert_eq!(
                t.offset("runtime.hmap", &["B"]).unwrap(),
                layout::HMAP_B as u64
            );
            assert_eq!(
                t.offset("runtime.hmap", &["buckets"]).unwrap(),
                layout::HMAP_BUCKETS as u64
            );
            let b = t.get("bucket<string,string>").unwrap();
            assert_eq!(
                b.size,
                Some(layout::MAP_BUCKET_STRING_STRING as u64),
                "go{v}"
            );
        }
        use layout::status::*;
        for (name, value, since) in [
            ("_Gidle", IDLE, (1, 0)),
            ("_Grunnable", RUNNABLE, (1, 0)),
            ("_Grunning", RUNNING, (1, 0)),
            ("_Gsyscall", SYSCALL, (1, 0)),
            ("_Gwaiting", WAITING, (1, 0)),
            ("_Gdead", DEAD, (1, 0)),
            ("_Gcopystack", COPYSTACK, (1, 0)),
            ("_Gpreempted", PREEMPTED, (1, 0)),
            ("_Gleaked", LEAKED, (1, 26)),
            ("_Gdeadextra", DEADEXTRA, (1, 26)),
            ("_Gscan", SCAN, (1, 0)),
        ] {
            if version >= since {
                let c = t.constant(&format!("runtime.{name}"));
                assert_eq!(c.ok(), Some(value as i64), "go{v}: runtime.{name}");
            }
        }
        // The wait-reason texts: runtime.waitReasonStrings as linked into the binary.
        let oracle = wait_reason_strings(&data);
        assert!(oracle.len() > 20, "go{v}: {} wait reasons", oracle.len());
        for (i, want) in oracle.iter().enumerate() {
            assert_eq!(
                layout::wait_reason(version, i as u8),
                Some(want.as_str()),
                "go{v}: wait reason {i}"
            );
        }
        assert_eq!(
            layout::wait_reason(version, oracle.len() as u8),
            None,
            "go{v}"
        );
        println!("{derived:?}");
        let row = layout::layout_for(version)
            .unwrap_or_else(|| panic!("go{v}: no table row for {version:?}"));
        assert_eq!(*row, derived, "go{v}: table row differs from DWARF");
        checked.push(version);
    }
    // Every row of the table is checked by some installed toolchain (1.20 is not in the
    // matrix, so the table has no 1.20 row).
    for row in layout::rows() {
        assert!(
            checked.contains(&row.version),
            "table row {:?} was not checked against any DWARF",
            row.version
        );
    }
}
