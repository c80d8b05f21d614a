//! Kernel symbols from `/proc/kallsyms`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KallsymsError {
    #[error("line {0}: malformed kallsyms line")]
    BadLine(usize),
    #[error("all kallsyms addresses are zero (kernel.kptr_restrict hides them; run as root)")]
    Hidden,
}

/// Text symbols of the kernel and its modules, sorted by address.
#[derive(Default)]
pub struct Kallsyms {
    symbols: Vec<(u64, String)>,
}

impl Kallsyms {
    pub fn parse(text: &str) -> Result<Self, KallsymsError> {
        let mut symbols = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut it = line.split_whitespace();
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
            symbols.push((addr, name.to_string()));
        }
        if !symbols.is_empty() && symbols.iter().all(|s| s.0 == 0) {
            return Err(KallsymsError::Hidden);
        }
        symbols.sort_by_key(|s| s.0);
        Ok(Kallsyms { symbols })
    }

    pub fn load() -> Result<Self, anyhow::Error> {
        let text = std::fs::read_to_string("/proc/kallsyms")?;
        Ok(Self::parse(&text)?)
    }

    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        Some(&self.symbols[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_looks_up() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _stext\nffffffff81000100 t do_one [kvm]\nffffffff81000200 D data\n",
        )
        .unwrap();
        assert_eq!(k.lookup(0xffffffff81000150), Some("do_one"));
        assert_eq!(k.lookup(0xffffffff81000000), Some("_stext"));
        assert_eq!(k.lookup(0x10), None);
    }

    #[test]
    fn errors() {
        assert!(matches!(Kallsyms::parse("0000000000000000 T a\n0000000000000000 T b\n"), Err(KallsymsError::Hidden)));
        assert!(matches!(Kallsyms::parse("zz T a\n"), Err(KallsymsError::BadLine(1))));
        assert!(Kallsyms::parse("ffff\n").is_err());
    }
}
