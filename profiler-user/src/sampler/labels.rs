//! Decoding the label sets the kernel interned (`profiler_ebpf::LabelSet`): the bytes were
//! copied out of the target's memory, so they are checked like any external input.

use std::sync::Arc;

use profiler_ebpf::{
    LABEL_SET_CUT_BYTES, LABEL_SET_CUT_LABELS, LABEL_UNRESOLVED, LabelSet, MAX_LABEL_BYTES,
    MAX_LABELS,
};

/// A goroutine's pprof labels as the kernel saw them, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels {
    pub pairs: Vec<(String, String)>,
    /// More labels than the kernel keeps ([`MAX_LABELS`]): only some are here.
    pub cut_labels: bool,
    /// A key or value was longer than [`MAX_LABEL_BYTES`] and was cut.
    pub cut_bytes: bool,
}

impl Labels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Label sets by the kernel's id.
pub type LabelSets = std::collections::HashMap<u32, Arc<Labels>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("label set of {0} labels (at most {MAX_LABELS})")]
    TooMany(u32),
    #[error("label of {0} bytes (at most {MAX_LABEL_BYTES})")]
    TooLong(u32),
    #[error("label key is not UTF-8")]
    KeyNotUtf8,
    /// A string the kernel left as an address could not be read from the process (gone, or
    /// not in a read-only file mapping, whose bytes cannot have changed since).
    #[error("label string at {0:#x} unreadable")]
    Unresolved(u64),
}

/// Reads `len` bytes at `addr` of the sampled process, for strings the kernel could not.
pub type Resolve<'a> = &'a mut dyn FnMut(u64, usize) -> Option<Vec<u8>>;

/// The longest valid UTF-8 prefix when `cut` (a cut can split a character), else all of it.
fn text(bytes: &[u8], cut: bool) -> Option<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s.to_string()),
        Err(e) if cut => Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()),
        Err(_) => None,
    }
}

/// Decodes a set whose strings are all in it (no process to resolve addresses in).
pub fn decode(set: &LabelSet) -> Result<Labels, LabelError> {
    decode_with(set, &mut |_, _| None)
}

/// The bytes of one string of a pair: in the set, or (unresolved) read through `resolve`.
fn bytes_of(stored: &[u8], len: u32, resolve: Resolve<'_>) -> Result<Vec<u8>, LabelError> {
    let n = (len & !LABEL_UNRESOLVED) as usize;
    if n > MAX_LABEL_BYTES {
        return Err(LabelError::TooLong(n as u32));
    }
    if len & LABEL_UNRESOLVED == 0 {
        return Ok(stored[..n].to_vec());
    }
    let addr = u64::from_le_bytes(stored[..8].try_into().expect("8 bytes"));
    match resolve(addr, n) {
        Some(b) if b.len() == n => Ok(b),
        _ => Err(LabelError::Unresolved(addr)),
    }
}

/// Decodes a set, reading the strings the kernel left unresolved through `resolve`.
pub fn decode_with(set: &LabelSet, resolve: Resolve<'_>) -> Result<Labels, LabelError> {
    if set.len as usize > MAX_LABELS {
        return Err(LabelError::TooMany(set.len));
    }
    let cut_bytes = set.flags & LABEL_SET_CUT_BYTES != 0;
    let mut pairs = Vec::with_capacity(set.len as usize);
    for p in &set.pairs[..set.len as usize] {
        if p.key_len & !LABEL_UNRESOLVED == 0 {
            continue; // an empty slot of a Go ≤ 1.23 label map
        }
        let key = bytes_of(&p.key, p.key_len, resolve)?;
        let val = bytes_of(&p.val, p.val_len, resolve)?;
        let key = text(&key, cut_bytes).ok_or(LabelError::KeyNotUtf8)?;
        // A value that is not UTF-8 is shown lossily rather than dropping the whole set.
        let lossy = String::from_utf8_lossy(&val).into_owned();
        let val = if cut_bytes {
            text(&val, true).unwrap_or(lossy)
        } else {
            lossy
        };
        pairs.push((key, val));
    }
    pairs.sort();
    pairs.dedup_by(|a, b| a.0 == b.0);
    Ok(Labels {
        pairs,
        cut_labels: set.flags & LABEL_SET_CUT_LABELS != 0,
        cut_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use profiler_ebpf::LabelPair;

    fn set(pairs: &[(&[u8], &[u8])], flags: u32) -> LabelSet {
        let mut s = LabelSet {
            len: pairs.len() as u32,
            flags,
            pairs: [LabelPair {
                key_len: 0,
                val_len: 0,
                key: [0; MAX_LABEL_BYTES],
                val: [0; MAX_LABEL_BYTES],
            }; MAX_LABELS],
        };
        for (i, (k, v)) in pairs.iter().enumerate() {
            s.pairs[i].key_len = k.len() as u32;
            s.pairs[i].val_len = v.len() as u32;
            s.pairs[i].key[..k.len()].copy_from_slice(k);
            s.pairs[i].val[..v.len()].copy_from_slice(v);
        }
        s
    }

    #[test]
    fn decodes_sorted() {
        let l = decode(&set(&[(b"worker", b"2"), (b"phase", b"a")], 0)).unwrap();
        assert_eq!(
            l.pairs,
            vec![("phase".into(), "a".into()), ("worker".into(), "2".into())]
        );
        assert_eq!(l.get("worker"), Some("2"));
        assert!(!l.cut_labels && !l.cut_bytes);
    }

    #[test]
    fn empty_slots_are_no_labels() {
        let l = decode(&set(&[(b"", b""), (b"k", b"v"), (b"", b"")], 0)).unwrap();
        assert_eq!(l.pairs, vec![("k".into(), "v".into())]);
    }

    #[test]
    fn rejects_bad_sets() {
        let mut s = set(&[(b"k", b"v")], 0);
        s.len = 9;
        assert_eq!(decode(&s), Err(LabelError::TooMany(9)));
        let mut s = set(&[(b"k", b"v")], 0);
        s.pairs[0].val_len = 65;
        assert_eq!(decode(&s), Err(LabelError::TooLong(65)));
        assert_eq!(
            decode(&set(&[(b"\xff", b"v")], 0)),
            Err(LabelError::KeyNotUtf8)
        );
    }

    #[test]
    fn unresolved_strings_are_read_through_the_resolver() {
        let mut s = set(&[(b"", b"v")], profiler_ebpf::LABEL_SET_UNRESOLVED);
        s.pairs[0].key[..8].copy_from_slice(&0x4a_1000u64.to_le_bytes());
        s.pairs[0].key_len = 6 | LABEL_UNRESOLVED;
        let mut asked = Vec::new();
        let l = decode_with(&s, &mut |addr, len| {
            asked.push((addr, len));
            Some(b"worker".to_vec())
        })
        .unwrap();
        assert_eq!(asked, vec![(0x4a_1000, 6)]);
        assert_eq!(l.pairs, vec![("worker".into(), "v".into())]);
        // Without a process to read (or a read that fails): an error, never guessed bytes.
        assert_eq!(decode(&s), Err(LabelError::Unresolved(0x4a_1000)));
        assert_eq!(
            decode_with(&s, &mut |_, _| Some(b"short".to_vec())),
            Err(LabelError::Unresolved(0x4a_1000))
        );
    }

    #[test]
    fn cut_value_keeps_valid_prefix() {
        let l = decode(&set(
            &[(b"k", "aé".as_bytes().split_at(2).0)],
            LABEL_SET_CUT_BYTES,
        ))
        .unwrap();
        assert_eq!(l.pairs[0].1, "a");
        assert!(l.cut_bytes);
    }
}
