//! The processes being profiled: one entry per process (told apart from a later process that
//! reuses its pid) and one snapshot per image it ran, fed by the kernel's fork/exec/exit
//! events and by first samples.
//!
//! An image is snapshotted the moment it is announced (exec event, fork event, or the first
//! sample of a process nobody announced), while the process runs, so short-lived processes
//! still symbolize. A process that exited is forgotten two batches later: its last samples,
//! taken before the exit, arrive in the batch drained after it.

use std::collections::{HashMap, HashSet};

use profiler_ebpf::{EVENT_EXEC, EVENT_EXIT, EVENT_FORK, ProcessEvent};

use std::sync::Arc;

use super::{LiveProcs, ObjectCache, ObjectFile, ProcessSnapshot, ProcessSource, ReadError};

/// A process, told apart from a later one that reuses its pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: clock ticks since boot (0 when it could not be read).
    pub start_time: u64,
}

/// What is known of a process besides its images.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub comm: String,
    /// /proc/PID/exe as the process sees it.
    pub exe: String,
    pub parent: u32,
    /// The cgroup v2 path (`0::/...` line of /proc/PID/cgroup).
    pub cgroup: String,
    /// `OTEL_SERVICE_NAME`, else `PYROSCOPE_SERVICE_NAME`, from /proc/PID/environ (read only
    /// when [`Registry::read_service_env`] is set).
    pub service_env: Option<String>,
}

/// The environment variables that name a service, in order of preference.
pub const SERVICE_ENV_VARS: [&str; 2] = ["OTEL_SERVICE_NAME", "PYROSCOPE_SERVICE_NAME"];

/// The first of [`SERVICE_ENV_VARS`] set (non-empty) in an environ block.
pub fn service_from_environ(environ: &[u8]) -> Option<String> {
    let vars: Vec<(&[u8], &[u8])> = environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let i = kv.iter().position(|&b| b == b'=')?;
            Some((&kv[..i], &kv[i + 1..]))
        })
        .collect();
    SERVICE_ENV_VARS.iter().find_map(|name| {
        vars.iter()
            .find(|(k, v)| *k == name.as_bytes() && !v.is_empty())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    })
}

struct Process {
    id: ProcessId,
    info: ProcessInfo,
    /// The newest exec generation seen.
    generation: u32,
    /// The batch after which the kernel said it exited.
    exited_after: Option<u64>,
}

struct Image {
    snapshot: Option<ProcessSnapshot>,
    /// Re-read /proc/PID/maps at most once per batch when an address is not mapped (dlopen).
    refreshed_at: u64,
}

/// Counters of the registry, each failure by reason.
#[derive(Clone, Debug, Default)]
pub struct RegistryCounters {
    pub snapshots: u64,
    pub refreshes: u64,
    pub exits: u64,
    pub pid_reuses: u64,
    pub failures: HashMap<&'static str, u64>,
}

pub struct Registry {
    pub objects: ObjectCache,
    /// Where everything about a process is read from (`/proc`, or a capture).
    source: Box<dyn ProcessSource>,
    processes: HashMap<u32, Process>,
    images: HashMap<(u32, u32), Image>,
    /// The batch being ingested (events between batches belong to the next one).
    batch: u64,
    notes: Vec<String>,
    noted: HashSet<String>,
    pub counters: RegistryCounters,
    /// Read each new process's service name from its environment (agent, opt-in).
    pub read_service_env: bool,
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn start_time(pid: u32) -> Option<u64> {
    LiveProcs.start_time(pid)
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_source(Box::new(LiveProcs))
    }
}

impl Registry {
    /// A registry that reads processes from `source`.
    pub fn with_source(source: Box<dyn ProcessSource>) -> Self {
        Registry {
            objects: ObjectCache::default(),
            source,
            processes: HashMap::new(),
            images: HashMap::new(),
            batch: 0,
            notes: Vec::new(),
            noted: HashSet::new(),
            counters: RegistryCounters::default(),
            read_service_env: false,
        }
    }

    /// Replaces where processes are read from (a capture wraps the live source).
    pub fn set_source(&mut self, source: Box<dyn ProcessSource>) {
        self.source = source;
    }

    /// Notes for the report (unreadable files, processes that could not be read), each once.
    pub fn take_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        if !self.counters.failures.is_empty() {
            let mut reasons: Vec<_> = self.counters.failures.iter().collect();
            reasons.sort();
            let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            notes.push(format!(
                "process images that could not be read (their frames are [unknown]): {}",
                reasons.join(", ")
            ));
        }
        notes
    }

    fn note(&mut self, note: String) {
        let key = note
            .split(" (first seen in pid")
            .next()
            .unwrap_or(&note)
            .to_string();
        if self.noted.insert(key) {
            self.notes.push(note);
        }
    }

    /// Handles the kernel's events as they arrive.
    pub fn on_events(&mut self, events: &[ProcessEvent]) {
        for ev in events {
            match ev.kind {
                // The child runs its parent's image until it execs.
                EVENT_FORK if !self.images.contains_key(&(ev.value, 0)) => {
                    self.snapshot_child(ev.value, Some(ev.tgid))
                }
                EVENT_EXEC => self.snapshot(ev.tgid, ev.value),
                EVENT_EXIT => {
                    if let Some(p) = self.processes.get_mut(&ev.tgid) {
                        p.exited_after.get_or_insert(self.batch);
                        self.counters.exits += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts ingesting batch `seq`.
    pub fn begin_batch(&mut self, seq: u64) {
        self.batch = seq;
    }

    /// Ends a batch: forgets processes that exited two batches ago. Returns their pids (to
    /// remove from the kernel's filter).
    pub fn end_batch(&mut self) -> Vec<u32> {
        let batch = self.batch;
        let gone: Vec<u32> = self
            .processes
            .iter()
            .filter(|(_, p)| p.exited_after.is_some_and(|b| b + 2 <= batch))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in &gone {
            self.forget(*pid);
        }
        self.objects.evict_unused();
        gone
    }

    fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.images.retain(|&(p, _), _| p != pid);
    }

    /// Processes whose exit event was lost (ring buffer full) are found by their absence.
    pub fn forget_vanished(&mut self) -> Vec<u32> {
        let alive: Vec<(u32, u64)> = self
            .processes
            .iter()
            .filter(|(_, p)| p.exited_after.is_none())
            .map(|(&pid, p)| (pid, p.id.start_time))
            .collect();
        let gone: Vec<u32> = alive
            .into_iter()
            .filter(|&(pid, start)| self.source.start_time(pid) != Some(start))
            .map(|(pid, _)| pid)
            .collect();
        let batch = self.batch;
        for pid in &gone {
            if let Some(p) = self.processes.get_mut(pid) {
                p.exited_after = Some(batch);
            }
        }
        gone
    }

    fn insert_process(&mut self, pid: u32, start: Option<u64>) -> &mut Process {
        let source = &mut self.source;
        let read_env = self.read_service_env;
        self.processes.entry(pid).or_insert_with(|| Process {
            id: ProcessId {
                pid,
                start_time: start.or_else(|| source.start_time(pid)).unwrap_or(0),
            },
            info: ProcessInfo {
                exe: source.exe(pid),
                parent: source.parent(pid).unwrap_or(0),
                cgroup: source.cgroup(pid),
                comm: source.comm(pid).unwrap_or_default(),
                service_env: if read_env {
                    source.environ(pid).and_then(|e| service_from_environ(&e))
                } else {
                    None
                },
            },
            generation: 0,
            exited_after: None,
        })
    }

    /// Reads an image now (exec, fork, first sample of an unannounced process).
    pub fn snapshot(&mut self, pid: u32, generation: u32) {
        let start = self.source.start_time(pid).unwrap_or(0);
        match self.processes.get(&pid) {
            Some(p) if p.id.start_time != start && start != 0 => {
                // The pid names another process now: what we knew is of the old one.
                self.counters.pid_reuses += 1;
                self.forget(pid);
            }
            _ => {}
        }
        self.counters.snapshots += 1;
        let snapshot =
            match ProcessSnapshot::take(pid, generation, &mut *self.source, &mut self.objects) {
                Ok(s) => {
                    for e in s.errors.clone() {
                        // Once per file, not per process: under --all a thousand processes of one
                        // binary would otherwise repeat it a thousand times.
                        self.note(format!("cannot read {e} (first seen in pid {pid})"));
                    }
                    Some(s)
                }
                Err(e) => {
                    *self.counters.failures.entry(e.reason()).or_default() += 1;
                    None
                }
            };
        let known = self.processes.get(&pid).map(|p| p.generation);
        if known.is_some_and(|g| generation > g) {
            // An exec: the new image may be another program, in another cgroup (a wrapper
            // that joins a cgroup and execs, as systemd and container runtimes do).
            let read_env = self.read_service_env;
            let source = &mut self.source;
            if let Some(p) = self.processes.get_mut(&pid) {
                p.info.exe = source.exe(pid);
                p.info.cgroup = source.cgroup(pid);
                if read_env {
                    p.info.service_env = source.environ(pid).and_then(|e| service_from_environ(&e));
                }
            }
        }
        let process = self.insert_process(pid, Some(start));
        process.generation = process.generation.max(generation);
        if let Some(s) = &snapshot {
            process.info.comm = s.comm.clone();
        }
        self.images.insert(
            (pid, generation),
            Image {
                snapshot,
                refreshed_at: u64::MAX,
            },
        );
    }

    /// Generation 0 of a forked child is its parent's image (Go forks only to exec: the
    /// child runs the parent's code until then). Reading /proc/CHILD/maps instead would often
    /// find the new image already, and name none of the child's first samples.
    fn snapshot_child(&mut self, child: u32, parent: Option<u32>) {
        // The parent as recorded when the child was first seen (at its exec event, while it
        // ran): /proc/CHILD/stat is gone by the time a short-lived child's samples arrive.
        let parent = parent
            .or_else(|| self.processes.get(&child).map(|p| p.info.parent))
            .filter(|&p| p != 0)
            .or_else(|| self.source.parent(child))
            .unwrap_or(0);
        if parent != 0 && !self.processes.contains_key(&parent) {
            // A parent with no samples yet (its child's pre-exec samples come first): read it
            // now, it is alive while its child was just forked.
            self.snapshot(parent, 0);
        }
        let from_parent = self.processes.get(&parent).and_then(|p| {
            self.images
                .get(&(parent, p.generation))
                .and_then(|i| i.snapshot.clone())
        });
        match from_parent {
            Some(mut s) => {
                s.pid = child;
                s.generation = 0;
                self.insert_process(child, None);
                self.images.insert(
                    (child, 0),
                    Image {
                        snapshot: Some(s),
                        refreshed_at: u64::MAX,
                    },
                );
            }
            None => self.snapshot(child, 0),
        }
    }

    /// The snapshot of an image, read now if nothing announced it.
    pub fn image(&mut self, pid: u32, generation: u32) -> Option<&ProcessSnapshot> {
        if !self.images.contains_key(&(pid, generation)) {
            let execd = self
                .processes
                .get(&pid)
                .is_some_and(|p| p.generation > generation);
            if generation == 0 && execd {
                // Samples from before an exec we already saw: the parent's image.
                self.snapshot_child(pid, None);
            } else {
                self.snapshot(pid, generation);
            }
        }
        self.images.get(&(pid, generation))?.snapshot.as_ref()
    }

    /// Re-reads an image whose snapshot does not map `ip` (a library loaded since), at most
    /// once per batch, while the process is alive.
    pub fn refresh_if_unmapped(&mut self, pid: u32, generation: u32, ip: u64) {
        let batch = self.batch;
        let Some(image) = self.images.get_mut(&(pid, generation)) else {
            return;
        };
        let unmapped = image
            .snapshot
            .as_ref()
            .is_some_and(|s| s.resolve(ip).is_none());
        if !unmapped || image.refreshed_at == batch {
            return;
        }
        image.refreshed_at = batch;
        if !self.source.alive(pid) {
            return;
        }
        self.counters.refreshes += 1;
        match ProcessSnapshot::take(pid, generation, &mut *self.source, &mut self.objects) {
            Ok(s) => image.snapshot = Some(s),
            Err(e) => *self.counters.failures.entry(e.reason()).or_default() += 1,
        }
    }

    pub fn id(&self, pid: u32) -> Option<ProcessId> {
        self.processes.get(&pid).map(|p| p.id)
    }

    /// The file of an image's executable (the mapping of /proc/PID/exe; else its first Go
    /// file).
    pub fn main_object(&self, pid: u32, generation: u32) -> Option<Arc<ObjectFile>> {
        let snapshot = self.images.get(&(pid, generation))?.snapshot.as_ref()?;
        let exe = self.processes.get(&pid).map(|p| p.info.exe.as_str());
        let exe = exe.map(|e| e.trim_end_matches(" (deleted)"));
        let by_path = snapshot.mappings.iter().find(|m| {
            exe.is_some_and(|e| !e.is_empty() && m.entry.path.trim_end_matches(" (deleted)") == e)
        });
        by_path
            .or_else(|| {
                snapshot
                    .mappings
                    .iter()
                    .find(|m| m.object.as_ref().is_some_and(|o| o.go.is_some()))
            })
            .and_then(|m| m.object.clone())
    }

    pub fn info(&self, pid: u32) -> Option<&ProcessInfo> {
        self.processes.get(&pid).map(|p| &p.info)
    }

    /// Processes currently known (alive, or exited less than two batches ago).
    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }
}

impl ReadError {
    /// A stable name for counting.
    pub fn reason(&self) -> &'static str {
        match self {
            ReadError::Gone => "gone",
            ReadError::Denied => "denied",
            ReadError::Unreadable(_) => "unreadable",
        }
    }
}
