//! The directory sink: one gzipped pprof per series and window, for air-gapped hosts, for
//! debugging, and for `record --window`. Optional caps on the total size and the age of the
//! files it keeps: the oldest go first.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{SeriesProfile, Sink, SinkError};

/// Limits on what the directory keeps (None: no limit).
#[derive(Clone, Copy, Debug, Default)]
pub struct DirCaps {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

/// Writes `DIR/window-NNNNN.pb.gz` for a recording's single series, and
/// `DIR/SERVICE/window-NNNNN.pb.gz` per service for the agent (the service name made safe for
/// a path).
pub struct DirSink {
    dir: PathBuf,
    caps: DirCaps,
    /// Files written or found, oldest first, with their sizes and times.
    kept: VecDeque<(PathBuf, u64, SystemTime)>,
    bytes: u64,
    /// Files removed by the caps.
    pub removed: u64,
}

/// A service name as one path component.
fn component(service: &str) -> String {
    let s: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DirSink {
    pub fn new(dir: PathBuf) -> Result<Self, SinkError> {
        Self::with_caps(dir, DirCaps::default())
    }

    /// A sink that also counts the `.pb.gz` files already in `dir` (an agent restarted)
    /// against its caps.
    pub fn with_caps(dir: PathBuf, caps: DirCaps) -> Result<Self, SinkError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut found = Vec::new();
        if caps.max_bytes.is_some() || caps.max_age.is_some() {
            collect(&dir, 2, &mut found);
        }
        found.sort_by_key(|(_, _, t)| *t);
        let bytes = found.iter().map(|(_, n, _)| n).sum();
        let mut sink = DirSink {
            dir,
            caps,
            kept: found.into(),
            bytes,
            removed: 0,
        };
        sink.enforce();
        Ok(sink)
    }

    pub fn path(&self, seq: u64, service: &str) -> PathBuf {
        let name = format!("window-{seq:05}.pb.gz");
        if service.is_empty() {
            self.dir.join(name)
        } else {
            self.dir.join(component(service)).join(name)
        }
    }

    /// Removes the oldest files until the caps hold.
    fn enforce(&mut self) {
        let now = SystemTime::now();
        while let Some((path, size, time)) = self.kept.front() {
            let too_big = self.caps.max_bytes.is_some_and(|m| self.bytes > m);
            let too_old = self
                .caps
                .max_age
                .is_some_and(|a| now.duration_since(*time).unwrap_or_default() > a);
            if !too_big && !too_old {
                break;
            }
            // Already gone (removed by hand) is as good as removed.
            let _ = std::fs::remove_file(path);
            self.bytes -= size;
            self.removed += 1;
            self.kept.pop_front();
        }
    }
}

/// `.pb.gz` files under `dir`, `depth` levels down.
fn collect(dir: &Path, depth: u32, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let path = e.path();
        if meta.is_dir() && depth > 1 {
            collect(&path, depth - 1, out);
        } else if meta.is_file() && path.to_string_lossy().ends_with(".pb.gz") {
            let t = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((path, meta.len(), t));
        }
    }
}

impl Sink for DirSink {
    fn name(&self) -> &str {
        "directory"
    }

    fn profile(&mut self, p: &SeriesProfile<'_>) -> Result<(), SinkError> {
        let bytes =
            crate::report::encode_pprof(p.profile).map_err(|e| SinkError::Encode(e.to_string()))?;
        let path = self.path(p.seq, &p.series.service);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // Written beside and renamed: a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(io(&path))?;
        self.bytes += bytes.len() as u64;
        self.kept
            .push_back((path, bytes.len() as u64, SystemTime::now()));
        self.enforce();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::sink::Series;

    #[test]
    fn caps_remove_the_oldest_files_first() {
        let dir = std::env::temp_dir().join(format!("gprof-dirsink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = Profile::new_cpu(99, SystemTime::now());
        let one = crate::report::encode_pprof(&p).unwrap().len() as u64;
        let caps = DirCaps {
            max_bytes: Some(2 * one),
            max_age: None,
        };
        let mut sink = DirSink::with_caps(dir.clone(), caps).unwrap();
        let series = Series {
            service: "github.com/acme/billing".into(),
            ..Default::default()
        };
        for seq in 1..=3 {
            sink.profile(&SeriesProfile {
                seq,
                series: &series,
                profile: &p,
            })
            .unwrap();
        }
        let sub = dir.join("github.com_acme_billing");
        assert!(!sub.join("window-00001.pb.gz").exists());
        assert!(sub.join("window-00002.pb.gz").exists());
        assert!(sub.join("window-00003.pb.gz").exists());
        assert_eq!(sink.removed, 1);
        // A restarted sink counts what is there.
        let again = DirSink::with_caps(dir.clone(), caps).unwrap();
        assert_eq!(again.bytes, 2 * one);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
