//! Decoding the label sets the kernel interned (`profiler_ebpf::LabelSet`): the bytes were
//! copied out of the target's memory, so they are checked like any external input.

use std::sync::Arc;

use profiler_ebpf::{
    LABEL_SET_CUT_BYTES, LABEL_SET_CUT_LABELS, LabelSet, MAX_LABEL_BYTES, MAX_LABELS,
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
}

/// The longest valid UTF-8 prefix when `cut` (a cut can split a character), else all of it.
fn text(bytes: &[u8], cut: bool) -> Option<String> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Some(s.to_string()),
        Err(e) if cut => Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()),
        Err(_) => None,
    }
}

pub fn decode(set: &LabelSet) -> Result<Labels, LabelError> {
    if set.len as usize > MAX_LABELS {
        return Err(LabelError::TooMany(set.len));
    }
    let cut_bytes = set.flags & LABEL_SET_CUT_BYTES != 0;
    let mut pairs = Vec::with_capacity(set.len as usize);
    for p in &set.pairs[..set.len as usize] {
        for len in [p.key_len, p.val_len] {
            if len as usize > MAX_LABEL_BYTES {
                return Err(LabelError::TooLong(len));
            }
        }
        if p.key_len == 0 {
            continue; // an empty slot of a Go ≤ 1.23 label map
        }
        let key = text(&p.key[..p.key_len as usize], cut_bytes).ok_or(LabelError::KeyNotUtf8)?;
        // A value that is not UTF-8 is shown lossily rather than dropping the whole set.
        let val = String::from_utf8_lossy(&p.val[..p.val_len as usize]).into_owned();
        let val = if cut_bytes {
            text(&p.val[..p.val_len as usize], true).unwrap_or(val)
        } else {
            val
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
