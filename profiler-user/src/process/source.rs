//! Where the registry's knowledge of processes comes from: the one seam between the registry
//! and `/proc`. [`LiveProcs`] reads the running system (root, while the process lives); a
//! capture ([`crate::capture`]) records every answer it gave and replays them without `/proc`
//! and without root, so ingest, windows and symbolization can be run again on the same data.

use std::path::{Path, PathBuf};

use super::{MapEntry, ObjectError, ObjectFile, ReadError};

/// Everything the registry reads about a process, one question at a time.
///
/// The registry asks in an order fixed by the messages it is fed (events, batches), so a
/// recorded sequence of answers replays exactly when fed the same messages.
pub trait ProcessSource: Send {
    /// Field 22 of /proc/PID/stat: clock ticks since boot.
    fn start_time(&mut self, pid: u32) -> Option<u64>;
    /// Field 4 of /proc/PID/stat.
    fn parent(&mut self, pid: u32) -> Option<u32>;
    /// The cgroup v2 path (`0::/...` line of /proc/PID/cgroup), empty if unknown.
    fn cgroup(&mut self, pid: u32) -> String;
    /// /proc/PID/exe as the process sees it, empty if unknown.
    fn exe(&mut self, pid: u32) -> String;
    /// /proc/PID/comm without its newline.
    fn comm(&mut self, pid: u32) -> Option<String>;
    /// The text of /proc/PID/maps.
    fn maps(&mut self, pid: u32) -> Result<String, ReadError>;
    /// Whether the process (its /proc entry) still exists.
    fn alive(&mut self, pid: u32) -> bool;
    /// Opens the file behind an executable mapping of `pid`.
    fn open(&mut self, pid: u32, entry: &MapEntry) -> Result<ObjectFile, ObjectError>;
    /// /proc/PID/environ (read only when the agent is told to name services from it).
    fn environ(&mut self, _pid: u32) -> Option<Vec<u8>> {
        None
    }
}

/// The running system's `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveProcs;

fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(n)?
            .to_string(),
    )
}

impl ProcessSource for LiveProcs {
    fn start_time(&mut self, pid: u32) -> Option<u64> {
        stat_field(pid, 19)?.parse().ok()
    }

    fn parent(&mut self, pid: u32) -> Option<u32> {
        stat_field(pid, 1)?.parse().ok()
    }

    fn cgroup(&mut self, pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            })
            .unwrap_or_default()
    }

    fn exe(&mut self, pid: u32) -> String {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn comm(&mut self, pid: u32) -> Option<String> {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end().to_string())
    }

    fn maps(&mut self, pid: u32) -> Result<String, ReadError> {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|e| ReadError::from_io(&e, "/proc/PID/maps"))
    }

    fn alive(&mut self, pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    fn environ(&mut self, pid: u32) -> Option<Vec<u8>> {
        std::fs::read(format!("/proc/{pid}/environ")).ok()
    }

    /// Through `/proc/PID/map_files/` (deleted files, other mount namespaces), else
    /// `/proc/PID/root/PATH`.
    fn open(&mut self, pid: u32, entry: &MapEntry) -> Result<ObjectFile, ObjectError> {
        let via_map_files = PathBuf::from(format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            entry.start, entry.end
        ));
        let path = entry.path.trim_end_matches(" (deleted)").to_string();
        let via_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
        ObjectFile::open(path.clone(), &via_map_files)
            .or_else(|_| ObjectFile::open(path, &via_root))
    }
}
