//! Just enough of a BTF reader to find one field of the kernel's own types: the offset of
//! `task_struct.thread.fsbase` (where a thread's TLS base is saved), which the kernel program
//! needs to find a Go thread's current goroutine. No CO-RE: the offset is computed here, once,
//! and passed in the control map.

/// Why the offset could not be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF: no {0}")]
    Missing(String),
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    /// size or referenced type.
    size_type: u32,
    /// Byte range of the members (struct/union).
    members: std::ops::Range<usize>,
}

struct Btf<'a> {
    types: Vec<Type>, // index = type id - 1
    data: &'a [u8],
    strings: &'a [u8],
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl<'a> Btf<'a> {
    fn parse(b: &'a [u8]) -> Result<Self, BtfError> {
        let magic = b.get(0..2).ok_or(BtfError::Malformed("truncated header"))?;
        if u16::from_le_bytes([magic[0], magic[1]]) != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let type_off = u32_at(b, 8)? as usize;
        let type_len = u32_at(b, 12)? as usize;
        let str_off = u32_at(b, 16)? as usize;
        let str_len = u32_at(b, 20)? as usize;
        let range = |off: usize, len: usize| {
            let start = hdr_len
                .checked_add(off)
                .ok_or(BtfError::Malformed("section offset"))?;
            let end = start
                .checked_add(len)
                .ok_or(BtfError::Malformed("section length"))?;
            b.get(start..end)
                .ok_or(BtfError::Malformed("section out of bounds"))
        };
        let data = range(type_off, type_len)?;
        let strings = range(str_off, str_len)?;
        let mut types = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let name_off = u32_at(data, pos)?;
            let info = u32_at(data, pos + 4)?;
            let size_type = u32_at(data, pos + 8)?;
            pos += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                0 | 2 | 7 | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | 12 | 16
                | KIND_TYPE_TAG => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            if pos + extra > data.len() {
                return Err(BtfError::Malformed("type runs past the section"));
            }
            types.push(Type {
                name_off,
                kind,
                kind_flag: info >> 31 != 0,
                size_type,
                members: pos..pos + extra,
            });
            pos += extra;
        }
        Ok(Btf {
            types,
            data,
            strings,
        })
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        &s[..end]
    }

    fn get(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Follows typedefs and qualifiers to the type itself.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// `(byte offset, type id)` of member `name` of a struct or union.
    fn member(&self, t: &Type, name: &str) -> Result<(u32, u32), BtfError> {
        let members = &self.data[t.members.clone()];
        for m in members.chunks_exact(12) {
            let name_off = u32_at(m, 0)?;
            let ty = u32_at(m, 4)?;
            let mut bits = u32_at(m, 8)?;
            if t.kind_flag {
                bits &= 0x00ff_ffff;
            }
            if self.name(name_off) == name.as_bytes() {
                if bits % 8 != 0 {
                    return Err(BtfError::Malformed("bitfield member"));
                }
                return Ok((bits / 8, ty));
            }
        }
        Err(BtfError::Missing(format!("member {name}")))
    }

    fn struct_named(&self, name: &str) -> Result<&Type, BtfError> {
        self.types
            .iter()
            .find(|t| {
                t.kind == KIND_STRUCT
                    && !t.members.is_empty()
                    && self.name(t.name_off) == name.as_bytes()
            })
            .ok_or_else(|| BtfError::Missing(format!("struct {name}")))
    }
}

/// Byte offset of `task_struct.thread.fsbase` in the kernel described by `btf` (the bytes of
/// `/sys/kernel/btf/vmlinux`).
pub fn fsbase_offset(btf: &[u8]) -> Result<u32, BtfError> {
    let btf = Btf::parse(btf)?;
    let task = btf.struct_named("task_struct")?;
    let (thread_off, thread_ty) = btf.member(task, "thread")?;
    let thread = btf
        .resolve(thread_ty)
        .filter(|t| t.kind == KIND_STRUCT)
        .ok_or_else(|| BtfError::Missing("struct type of task_struct.thread".into()))?;
    let (fs_off, _) = btf.member(thread, "fsbase")?;
    thread_off
        .checked_add(fs_off)
        .ok_or(BtfError::Malformed("offset overflow"))
}

/// The offset on this kernel; None (with the reason) when its BTF cannot be read.
pub fn host_fsbase_offset() -> Result<u32, String> {
    let bytes = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| format!("/sys/kernel/btf/vmlinux: {e}"))?;
    fsbase_offset(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(fsbase_offset(&[]).is_err());
        assert!(fsbase_offset(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut hdr = vec![0x9f, 0xeb, 1, 0];
        for v in [24u32, 0, 100, 0, 0] {
            hdr.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            fsbase_offset(&hdr),
            Err(BtfError::Malformed("section out of bounds"))
        );
    }
}
