//! `/proc/PID/maps` parsing.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MapsError {
    #[error("line {line}: {reason}: {text:?}")]
    BadLine {
        line: usize,
        reason: &'static str,
        text: String,
    },
}

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub executable: bool,
    /// File offset of `start`.
    pub offset: u64,
    /// `(major, minor)` of the device.
    pub dev: (u32, u32),
    pub inode: u64,
    /// Path, pseudo-name (`[heap]`, `[vdso]`...) or empty for anonymous memory. A file that
    /// was deleted keeps its ` (deleted)` suffix here.
    pub path: String,
}

impl MapEntry {
    /// Backed by a regular file (not anonymous, not `[vdso]`-style).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }
}

/// Parses the whole text of a maps file.
pub fn parse(text: &str) -> Result<Vec<MapEntry>, MapsError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|reason| MapsError::BadLine {
                line: i + 1,
                reason,
                text: l.to_string(),
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MapEntry, &'static str> {
    // address perms offset dev inode [path]; the path may contain spaces.
    let mut rest = line;
    let mut field = || -> Result<&str, &'static str> {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        if f.is_empty() {
            Err("missing field")
        } else {
            Ok(f)
        }
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let dev = field()?;
    let inode = field()?;
    let path = rest.trim_start().to_string();
    let (s, e) = range.split_once('-').ok_or("bad address range")?;
    let start = u64::from_str_radix(s, 16).map_err(|_| "bad start address")?;
    let end = u64::from_str_radix(e, 16).map_err(|_| "bad end address")?;
    if end < start {
        return Err("end before start");
    }
    let pb = perms.as_bytes();
    if pb.len() < 4 {
        return Err("bad permissions");
    }
    let (maj, min) = dev.split_once(':').ok_or("bad device")?;
    Ok(MapEntry {
        start,
        end,
        readable: pb[0] == b'r',
        executable: pb[2] == b'x',
        offset: u64::from_str_radix(offset, 16).map_err(|_| "bad offset")?,
        dev: (
            u32::from_str_radix(maj, 16).map_err(|_| "bad device")?,
            u32::from_str_radix(min, 16).map_err(|_| "bad device")?,
        ),
        inode: inode.parse().map_err(|_| "bad inode")?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_lines() {
        let text = "00400000-0049c000 r-xp 00000000 fe:01 1234   /usr/bin/my prog\n\
                    7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]\n\
                    7f00-8f00 rw-p 00001000 00:00 0 \n";
        let m = parse(text).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].start, 0x400000);
        assert_eq!(m[0].path, "/usr/bin/my prog");
        assert!(m[0].executable && m[0].is_file());
        assert_eq!(m[0].dev, (0xfe, 1));
        assert!(!m[1].is_file());
        assert_eq!(m[2].offset, 0x1000);
        assert_eq!(m[2].path, "");
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "zz-10 r-xp 0 00:00 0",
            "10-5 r-xp 0 00:00 0",
            "10-20",
            "10-20 r 0 00:00 0",
            "10-20 r-xp 0 0000 0",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x1234_5678u64;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(seed % 60) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(b"0123456789abcdef- :rwxp/\n"[(seed >> 33) as usize % 25] as char);
            }
            let _ = parse(&s);
        }
    }
}
