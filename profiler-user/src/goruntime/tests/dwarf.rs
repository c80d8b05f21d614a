//! A small DWARF reader for the tests: struct member offsets, typedef targets and constants of
//! a Go build, read with gimli from the unstripped binary. It is the oracle of the layout
//! table, so it shares nothing with the code under test.

use gimli::{AttributeValue, EndianSlice, RunTimeEndian};
use object::{Object as _, ObjectSection as _};
use std::borrow::Cow;
use std::collections::HashMap;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// One named type or constant.
#[derive(Clone, Debug)]
pub struct Entry {
    pub tag: gimli::DwTag,
    pub name: String,
    /// Byte size (types).
    pub size: Option<u64>,
    /// `DW_AT_type`, as a `.debug_info` offset.
    pub ty: Option<usize>,
    /// Constant value (`DW_TAG_constant`).
    pub value: Option<i64>,
    /// `(name, offset, type)` of the members of a struct.
    pub members: Vec<(String, u64, Option<usize>)>,
}

pub struct Types {
    pub by_off: HashMap<usize, Entry>,
    pub by_name: HashMap<String, usize>,
}

impl Types {
    pub fn parse(file: &[u8]) -> anyhow::Result<Types> {
        let obj = object::File::parse(file)?;
        let endian = if obj.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let mut keep: Vec<Cow<'_, [u8]>> = Vec::new();
        let mut sections: HashMap<&'static str, usize> = HashMap::new();
        for id in [
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugStrOffsets,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugLine,
            gimli::SectionId::DebugRanges,
            gimli::SectionId::DebugRngLists,
        ] {
            let zname = id.name().replacen(".debug_", ".zdebug_", 1);
            if let Some(s) = obj
                .section_by_name(id.name())
                .or_else(|| obj.section_by_name(&zname))
            {
                sections.insert(id.name(), keep.len());
                let c = s.compressed_data()?;
                keep.push(match c.format {
                    // Go ≤ 1.21: `.zdebug_*`, "ZLIB" + big-endian size + zlib stream.
                    object::CompressionFormat::None if c.data.starts_with(b"ZLIB") => {
                        let mut out = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::ZlibDecoder::new(c.data.get(12..).unwrap_or(&[])),
                            &mut out,
                        )?;
                        Cow::Owned(out)
                    }
                    object::CompressionFormat::None => Cow::Borrowed(c.data),
                    object::CompressionFormat::Zlib => {
                        let mut out = Vec::with_capacity(c.uncompressed_size as usize);
                        std::io::Read::read_to_end(
                            &mut flate2::read::ZlibDecoder::new(c.data),
                            &mut out,
                        )?;
                        Cow::Owned(out)
                    }
                    f => anyhow::bail!("{}: compression {f:?}", id.name()),
                });
            }
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> {
            Ok(match sections.get(id.name()) {
                Some(&i) => EndianSlice::new(&keep[i], endian),
                None => EndianSlice::new(&[], endian),
            })
        })?;
        let mut by_off = HashMap::new();
        let mut by_name = HashMap::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let base = header
                .offset()
                .as_debug_info_offset()
                .map(|o| o.0)
                .unwrap_or(0);
            let global = |v: AttributeValue<R<'_>>| match v {
                AttributeValue::UnitRef(o) => Some(base + o.0),
                AttributeValue::DebugInfoRef(o) => Some(o.0),
                _ => None,
            };
            let mut cursor = unit.entries();
            let mut depth = 0isize;
            // (depth, offset) of the struct whose members we are reading.
            let mut current: Option<(isize, usize)> = None;
            while let Some((delta, die)) = cursor
                .next_dfs()
                .map_err(|e| anyhow::anyhow!("unit {base:#x}: {e}"))?
            {
                depth += delta;
                let off = base + die.offset().0;
                if let Some((d, _)) = current
                    && depth <= d
                {
                    current = None;
                }
                let name = match die
                    .attr_value(gimli::DW_AT_name)
                    .map_err(|e| anyhow::anyhow!("die {off:#x} name: {e}"))?
                {
                    Some(v) => dwarf.attr_string(&unit, v)?.to_string_lossy().into_owned(),
                    None => String::new(),
                };
                let ty = die.attr_value(gimli::DW_AT_type)?.and_then(global);
                if die.tag() == gimli::DW_TAG_member {
                    if let Some((_, s)) = current {
                        let loc = match die.attr_value(gimli::DW_AT_data_member_location)? {
                            Some(AttributeValue::Udata(u)) => u,
                            Some(AttributeValue::Data1(u)) => u.into(),
                            Some(AttributeValue::Data2(u)) => u.into(),
                            Some(AttributeValue::Data4(u)) => u.into(),
                            Some(AttributeValue::Data8(u)) => u,
                            Some(AttributeValue::Sdata(u)) => u as u64,
                            other => anyhow::bail!("member {name}: location {other:?}"),
                        };
                        if let Some(e) = by_off.get_mut(&s) {
                            let e: &mut Entry = e;
                            e.members.push((name, loc, ty));
                        }
                    }
                    continue;
                }
                if name.is_empty() {
                    continue;
                }
                let size = die
                    .attr_value(gimli::DW_AT_byte_size)?
                    .and_then(|v| v.udata_value());
                let value = match die.attr_value(gimli::DW_AT_const_value)? {
                    Some(AttributeValue::Sdata(v)) => Some(v),
                    Some(v) => v.udata_value().map(|u| u as i64),
                    None => None,
                };
                if die.tag() == gimli::DW_TAG_structure_type {
                    current = Some((depth, off));
                }
                by_name.entry(name.clone()).or_insert(off);
                by_off.insert(
                    off,
                    Entry {
                        tag: die.tag(),
                        name,
                        size,
                        ty,
                        value,
                        members: Vec::new(),
                    },
                );
            }
        }
        Ok(Types { by_off, by_name })
    }

    pub fn get(&self, name: &str) -> anyhow::Result<&Entry> {
        let off = self
            .by_name
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no DWARF entry named {name}"))?;
        Ok(&self.by_off[off])
    }

    /// Offset of `path` (e.g. `["sched", "sp"]`) inside struct `ty`, following member types.
    pub fn offset(&self, ty: &str, path: &[&str]) -> anyhow::Result<u64> {
        let mut e = self.get(ty)?;
        let mut total = 0;
        for (i, field) in path.iter().enumerate() {
            let (_, off, t) = e
                .members
                .iter()
                .find(|(n, _, _)| n == field)
                .ok_or_else(|| anyhow::anyhow!("{ty}: no member {}", path[..=i].join(".")))?;
            total += off;
            if i + 1 < path.len() {
                e = self.resolve(t.ok_or_else(|| anyhow::anyhow!("{field}: no type"))?)?;
            }
        }
        Ok(total)
    }

    /// The entry at `off`, through typedefs.
    pub fn resolve(&self, mut off: usize) -> anyhow::Result<&Entry> {
        for _ in 0..16 {
            let e = self
                .by_off
                .get(&off)
                .ok_or_else(|| anyhow::anyhow!("dangling type ref {off:#x}"))?;
            match (e.tag, e.ty) {
                (gimli::DW_TAG_typedef, Some(t)) => off = t,
                _ => return Ok(e),
            }
        }
        anyhow::bail!("typedef loop at {off:#x}")
    }

    /// Whether struct `ty` has member `name`.
    pub fn has(&self, ty: &str, name: &str) -> bool {
        self.get(ty)
            .is_ok_and(|e| e.members.iter().any(|(n, _, _)| n == name))
    }

    pub fn constant(&self, name: &str) -> anyhow::Result<i64> {
        self.get(name)?
            .value
            .ok_or_else(|| anyhow::anyhow!("{name} has no constant value"))
    }
}
