//! A bucket index over the function table, as the runtime's `findfunctab`: per 4 KiB of text
//! the index of the function containing its first byte, and per 256-byte sub-bucket a delta
//! from it. A lookup reads two small arrays, then scans forward over the few functions of its
//! sub-bucket, instead of a binary search over the whole table. Built from the function table
//! on first use, so stripped, relocated and old tables (no `findfunctab`) work the same.

/// Bytes of text per bucket and per sub-bucket.
const BUCKET: u64 = 4096;
const SUB: u64 = BUCKET / 16;
/// Above this many sub-buckets (a text over 4 GiB: a corrupt table) no index is built.
const MAX_SUBS: u64 = 1 << 24;

pub(super) struct FuncIndex {
    /// Entry of function 0: the index covers `[lo, entry(n))`.
    lo: u64,
    buckets: Box<[u32]>,
    subs: Box<[u8]>,
}

impl FuncIndex {
    /// Builds the index over `entry(0..=n)`; None unless every entry is readable and they do
    /// not decrease (the caller then binary-searches the table, reporting what is wrong).
    pub(super) fn build(n: usize, entry: impl Fn(usize) -> Option<u64>) -> Option<FuncIndex> {
        if n == 0 || n > u32::MAX as usize {
            return None;
        }
        let lo = entry(0)?;
        let mut prev = lo;
        for i in 1..=n {
            let e = entry(i)?;
            if e < prev {
                return None;
            }
            prev = e;
        }
        let nsubs = (prev - lo).div_ceil(SUB).max(1);
        if nsubs > MAX_SUBS {
            return None;
        }
        let nbuckets = nsubs.div_ceil(16) as usize;
        let mut buckets = Vec::with_capacity(nbuckets);
        let mut subs = Vec::with_capacity(nbuckets * 16);
        let mut i = 0usize;
        for k in 0..nbuckets as u64 * 16 {
            let addr = lo + k * SUB;
            // The last function whose entry is at most addr.
            while i + 1 < n && entry(i + 1)? <= addr {
                i += 1;
            }
            if k % 16 == 0 {
                buckets.push(i as u32);
            }
            let base = *buckets.last()? as usize;
            // A saturated delta only starts the forward scan earlier.
            subs.push((i - base).min(255) as u8);
        }
        Some(FuncIndex {
            lo,
            buckets: buckets.into_boxed_slice(),
            subs: subs.into_boxed_slice(),
        })
    }

    /// A function index at or before the one containing `pc` (`pc >= lo`), in its sub-bucket.
    #[inline]
    pub(super) fn start(&self, pc: u64) -> Option<usize> {
        let off = pc.checked_sub(self.lo)?;
        let b = *self.buckets.get((off / BUCKET) as usize)? as usize;
        let s = *self.subs.get((off / SUB) as usize)? as usize;
        Some(b + s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index's start plus the forward scan must give the last function whose entry is at
    /// most the PC (oracle: `partition_point` over the entries), for tiny functions (more
    /// than 255 in a sub-bucket: saturated deltas), zero-size ones and big gaps.
    #[test]
    fn start_then_scan_finds_the_containing_function() {
        let mut entries = vec![0x1000u64];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for k in 0..3000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let step = match k {
                100..=700 => x % 2,  // 1-byte and zero-size functions
                701..=710 => 20_000, // gaps spanning buckets
                _ => 1 + x % 300,
            };
            entries.push(entries.last().unwrap() + step);
        }
        let n = entries.len() - 1;
        let ix = FuncIndex::build(n, |i| entries.get(i).copied()).unwrap();
        let (lo, hi) = (entries[0], entries[n]);
        for pc in lo..hi {
            let want = entries[..n].partition_point(|&e| e <= pc) - 1;
            let mut i = ix.start(pc).unwrap();
            assert!(i <= want, "pc {pc:#x}");
            while i + 1 < n && entries[i + 1] <= pc {
                i += 1;
            }
            assert_eq!(i, want, "pc {pc:#x}");
        }
    }

    #[test]
    fn unsorted_or_unreadable_tables_get_no_index() {
        let e = [0x1000u64, 0x1010, 0x1008, 0x1020];
        assert!(FuncIndex::build(3, |i| e.get(i).copied()).is_none());
        assert!(FuncIndex::build(4, |i| e.get(i).copied()).is_none());
        assert!(FuncIndex::build(0, |i| e.get(i).copied()).is_none());
        let huge = [0u64, 1 << 40];
        assert!(FuncIndex::build(1, |i| huge.get(i).copied()).is_none());
    }
}
