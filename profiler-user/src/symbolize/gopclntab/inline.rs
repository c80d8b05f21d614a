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
    /// True when `parent` is stored (Go 1.9–1.19).
    pub(super) has_parent: bool,
    // Go 1.9–1.19 only (`file`, `line`: the call site):
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
            has_parent: false,
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
                r.has_parent = true;
                r.parent = i32::from(i16::from_le_bytes([b[0], b[1]]));
                r.func_id = b[2];
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
                r.parent_pc = i32_at(16);
            }
            Inl::Old16 | Inl::None => {
                r.has_parent = true;
                r.parent = i32_at(0);
                r.file = i32_at(4);
                r.line = i32_at(8);
                r.nameoff = i32_at(12) as u32;
            }
        }
        Ok(r)
    }
}

/// Whether the inline unwinding step from record `ix` through its `parent_pc` (an offset from
/// the entry, where the index is `parent_ix`) reaches the caller's code, as the runtime's
/// `inlineUnwinder.next` assumes.
///
/// The linker writes a parentPc only for records whose inline mark survived compilation
/// (`pcinlineState.setParentPC`); others keep 0, the function entry. That happens when the
/// inlined body's code exists without a mark, e.g. package `init` functions whose stores the
/// static initializer produced from inlined calls (`var X = attribute.Key("k").Int(1)`).
/// Following such a 0 lands on the entry and gives a wrong caller or a cycle. Rules, from how
/// the compiler and linker lay things out:
/// * parents are appended before their children (`pcinlineState.addBranch`), so a real step
///   strictly decreases the index;
/// * an inline mark at offset 0 is possible only in a function without a frame (a frame
///   starts with the prologue, added after the marks are placed), and since Go 1.21
///   (`entry_is_outermost`) the instruction at 0 is then the outermost function's own, so a
///   parentPc of 0 is real only when the function has no frame and, from 1.21 on, when
///   `parent_ix` is -1;
/// * Go 1.12–1.19 records name their parent (`parent`): the step must land on it.
pub(super) fn caller_found(
    r: &InlRec,
    ix: i32,
    parent_ix: i32,
    has_frame: bool,
    entry_is_outermost: bool,
) -> bool {
    if parent_ix >= ix {
        return false;
    }
    if r.has_parent && parent_ix != r.parent {
        return false;
    }
    r.parent_pc != 0 || !(has_frame || (entry_is_outermost && parent_ix >= 0))
}
