//! The symbol-independent stack table: every distinct stack of resolved frames gets a small
//! id, shared by every window that counts it. Symbolization happens later, per window, from
//! the frames (object, link address) alone.

use std::collections::HashMap;
use std::sync::Arc;

use crate::process::ObjectId;
use crate::profile::Mapping;
use crate::symbolize::gopclntab::PcKind;

/// Index into [`StackTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// Index into the table's mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MappingId(pub u32);

/// A resolved frame: enough to symbolize it after the process is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameRef {
    /// An address in a mapped file.
    User {
        object: ObjectId,
        mapping: MappingId,
        /// The runtime address.
        pc: u64,
        /// The link-time address (what symbol tables and pclntab use).
        link: u64,
        kind: PcKind,
        callee_panics: bool,
    },
    /// An address no mapping (or no readable file) explains.
    Unknown {
        pc: u64,
        kind: PcKind,
    },
    Kernel {
        pc: u64,
    },
}

#[derive(Default)]
pub struct StackTable {
    stacks: Vec<Arc<[FrameRef]>>,
    ids: HashMap<Arc<[FrameRef]>, StackId>,
    mappings: Vec<Mapping>,
    mapping_ids: HashMap<(String, u64, u64, u64), MappingId>,
}

impl StackTable {
    pub fn intern(&mut self, frames: Vec<FrameRef>) -> StackId {
        if let Some(&id) = self.ids.get(frames.as_slice()) {
            return id;
        }
        let frames: Arc<[FrameRef]> = frames.into();
        let id = StackId(self.stacks.len() as u32);
        self.stacks.push(frames.clone());
        self.ids.insert(frames, id);
        id
    }

    pub fn get(&self, id: StackId) -> &[FrameRef] {
        &self.stacks[id.0 as usize]
    }

    pub fn mapping_id(&mut self, m: Mapping) -> MappingId {
        let key = (m.file.clone(), m.start, m.limit, m.offset);
        if let Some(&id) = self.mapping_ids.get(&key) {
            return id;
        }
        let id = MappingId(self.mappings.len() as u32);
        self.mappings.push(m);
        self.mapping_ids.insert(key, id);
        id
    }

    pub fn mapping(&self, id: MappingId) -> &Mapping {
        &self.mappings[id.0 as usize]
    }

    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// Starts over (an agent does this between windows once the table is large: ids are
    /// only meaningful within the windows that were cut before).
    pub fn clear(&mut self) {
        *self = StackTable::default();
    }
}
