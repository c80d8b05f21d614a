//! Outputs of finished windows. A sink receives each window's profiles as they are cut, one
//! per [`Series`] (a recording has one series; the agent one per service). Sinks must not
//! block the pipeline: a network sink only encodes and queues here ([`queue`]) and sends on
//! its own task.

pub mod dir;
pub mod http;
pub mod otlp;
pub mod otlp_grpc;
pub mod pyroscope;
pub mod queue;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::profile::Profile;

pub use dir::DirSink;

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

/// What a profile is about, for a backend: its service and series labels (a recording's one
/// series has neither).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    /// `service_name`; empty for a recording.
    pub service: String,
    /// Other series labels (host, container, Go version...), sorted by key.
    pub labels: BTreeMap<String, String>,
}

impl Series {
    /// `service{k="v",...}`, for logs and file names.
    pub fn display(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.service, labels.join(","))
    }
}

/// One finished profile of one series.
pub struct SeriesProfile<'a> {
    /// The window's number: 1, 2, ... in order.
    pub seq: u64,
    pub series: &'a Series,
    pub profile: &'a Profile,
}

pub trait Sink: Send {
    fn name(&self) -> &str;
    /// Takes one profile of one window (a window with several series calls this once per
    /// series, then [`Sink::window_done`]).
    fn profile(&mut self, p: &SeriesProfile<'_>) -> Result<(), SinkError>;
    /// Every series of window `seq` was handed over.
    fn window_done(&mut self, _seq: u64) -> Result<(), SinkError> {
        Ok(())
    }
    /// No more windows follow: deliver what is queued (a network sink waits up to its
    /// deadline).
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
