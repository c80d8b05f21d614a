//! Outputs of finished windows. A sink receives each window's profile as it is cut; the
//! directory sink writes one pprof file per window (the agent's Pyroscope and OTLP sinks and
//! the live view plug in here too).

use std::path::PathBuf;

use crate::profile::Profile;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Encode(String),
}

pub trait Sink: Send {
    fn name(&self) -> &str;
    /// Takes one window's profile.
    fn window(&mut self, seq: u64, profile: &Profile) -> Result<(), SinkError>;
    /// No more windows follow.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Writes `DIR/window-NNNNN.pb.gz`, one gzipped pprof per window.
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    pub fn new(dir: PathBuf) -> Result<Self, SinkError> {
        std::fs::create_dir_all(&dir).map_err(|source| SinkError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(DirSink { dir })
    }

    pub fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("window-{seq:05}.pb.gz"))
    }
}

impl Sink for DirSink {
    fn name(&self) -> &str {
        "directory"
    }

    fn window(&mut self, seq: u64, profile: &Profile) -> Result<(), SinkError> {
        let bytes =
            crate::report::encode_pprof(profile).map_err(|e| SinkError::Encode(e.to_string()))?;
        let path = self.path(seq);
        // Written beside and renamed: a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| SinkError::Io { path, source })
    }
}
