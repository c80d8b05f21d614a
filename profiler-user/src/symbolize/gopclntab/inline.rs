//! Inline-tree records (`inlinedCall`) in the layouts of Go 1.9–1.11, 1.12–1.19 and 1.20+.

use super::{Error, GoTable, Inl, Result, elf};

/// Inline depth beyond which a tree is considered cyclic/corrupt.
pub(super) const MAX_INLINE_DEPTH: usize = 4096;

/// One inline-tree record, normalized.
#[derive(Clone, Copy, Debug)]
pub(super) struct InlRec {
    pub(super) func_id: u8,
    pub(super) nameoff: u32,
    pub(super) parent_pc: i32,
    pub(super) start_line: i32,
    // Go 1.9–1.11 only:
    pub(super) parent: i32,
    pub(super) file: i32,
    pub(super) line: i32,
}

impl<D: AsRef<[u8]>> GoTable<D> {
    pub(super) fn inl_record(&self, tree: u64, ix: i32) -> Result<InlRec> {
        let size: u64 = match self.layout.inl {
            Inl::Rec20 => 20,
            _ => 16,
        };
        let va = tree.checked_add(ix as u64 * size).ok_or(Error::BadOffset {
            what: "inline tree",
            offset: tree,
        })?;
        let b =
            elf::va_bytes(self.data.as_ref(), &self.segs, va, size).ok_or(Error::BadOffset {
                what: "inline record (virtual address)",
                offset: va,
            })?;
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut r = InlRec {
            func_id: 0,
            nameoff: 0,
            parent_pc: 0,
            start_line: 0,
            parent: -1,
            file: -1,
            line: -1,
        };
        match self.layout.inl {
            Inl::Rec16 => {
                r.func_id = b[0];
                r.nameoff = i32_at(4) as u32;
                r.parent_pc = i32_at(8);
                r.start_line = i32_at(12);
            }
            Inl::Rec20 => {
                r.parent = i32::from(i16::from_le_bytes([b[0], b[1]]));
                r.func_id = b[2];
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
                r.parent_pc = i32_at(16);
            }
            Inl::Old16 | Inl::None => {
                r.parent = i32_at(0);
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
            }
        }
        Ok(r)
    }
}
