//! Kernel symbols from `/proc/kallsyms`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KallsymsError {
    #[error("line {0}: malformed kallsyms line")]
    BadLine(usize),
    #[error("all kallsyms addresses are zero (kernel.kptr_restrict hides them; run as root)")]
    Hidden,
    #[error("reading /proc/kallsyms")]
    Read(#[source] std::io::Error),
}

/// Text symbols of the kernel and its modules, sorted by address. The names stay in the one
/// text that was read (about 200,000 lines): no allocation per symbol.
#[derive(Default)]
pub struct Kallsyms {
    text: String,
    /// (address, offset of the name in `text`, name length)
    symbols: Vec<(u64, u32, u32)>,
}

impl Kallsyms {
    pub fn parse(text: String) -> Result<Self, KallsymsError> {
        let mut symbols = Vec::new();
        let mut offset = 0usize;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let start = offset;
            offset += line.len();
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(KallsymsError::BadLine(i + 1));
            };
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let addr = u64::from_str_radix(addr, 16).map_err(|_| KallsymsError::BadLine(i + 1))?;
            let name_off = start + (name.as_ptr() as usize - line.as_ptr() as usize);
            let (Ok(off), Ok(len)) = (u32::try_from(name_off), u32::try_from(name.len())) else {
                return Err(KallsymsError::BadLine(i + 1));
            };
            symbols.push((addr, off, len));
        }
        if !symbols.is_empty() && symbols.iter().all(|s| s.0 == 0) {
            return Err(KallsymsError::Hidden);
        }
        symbols.sort_by_key(|s| s.0);
        Ok(Kallsyms { text, symbols })
    }

    pub fn load() -> Result<Self, KallsymsError> {
        let text = std::fs::read_to_string("/proc/kallsyms").map_err(KallsymsError::Read)?;
        Self::parse(text)
    }

    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self
            .symbols
            .partition_point(|s| s.0 <= addr)
            .checked_sub(1)?;
        let (_, off, len) = self.symbols[i];
        self.text.get(off as usize..(off + len) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t do_one [kvm]\nffffffff81000200 D data\n"
                .into(),
        )
        .unwrap();
        assert_eq!(k.lookup(0xffffffff81000150), Some("do_one"));
        assert_eq!(k.lookup(0xffffffff81000000), Some("_stext"));
        assert_eq!(k.lookup(0x10), None);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Kallsyms::parse("0000000000000000 T a\n0000000000000000 T b\n".into()),
            Err(KallsymsError::Hidden)
        ));
        assert!(matches!(
            Kallsyms::parse("zz T a\n".into()),
            Err(KallsymsError::BadLine(1))
        ));
        assert!(Kallsyms::parse("ffff\n".into()).is_err());
    }
}
