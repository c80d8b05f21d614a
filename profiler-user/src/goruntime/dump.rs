//! `gprof-bpf dump`: every goroutine of a running Go process, read from outside.
//!
//! The process is read with `process_vm_readv` without stopping it (or, with `lock`, while
//! every thread is held by ptrace): `runtime.allgs` (found by [`super::binary::find_allgs`],
//! stripped binaries included) → each `g` → its status, wait reason, labels and creator, and
//! its stack unwound from the saved `g.sched` (or `g.syscallsp/pc` in a system call) with the
//! SP deltas of gopclntab, the way the runtime's own traceback does. Every frame must stay
//! inside the goroutine's `[stack.lo, stack.hi)`; status and goid are read again after the
//! unwind and a goroutine that changed meanwhile is marked `moved`. See docs/goroutines.md.

use super::binary::{self, Allgs};
use super::layout::{self, LabelsRepr, Layout, status};
use crate::symbolize::buildinfo;
use crate::symbolize::gopclntab::{self, GoTable, PcKind};
use serde::Serialize;
use std::io::Write;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("process {0} does not exist (or exited during the dump)")]
    Exited(i32),
    #[error("reading /proc/{pid}/{what}: {err}")]
    Proc {
        pid: i32,
        what: &'static str,
        err: std::io::Error,
    },
    #[error("reading memory of process {pid} at {addr:#x}: {err}")]
    Read {
        pid: i32,
        addr: u64,
        err: std::io::Error,
    },
    #[error("not a Go program we can read: {0}")]
    Pclntab(#[from] gopclntab::Error),
    #[error("finding the runtime: {0}")]
    Binary(#[from] binary::Error),
    #[error("unknown Go version (no buildinfo)")]
    NoVersion,
    #[error("Go {0}.{1} is not in the runtime layout table: cannot read its goroutines")]
    UnknownVersion(u32, u32),
    #[error("implausible runtime.allgs: {0} goroutines")]
    BadAllgs(u64),
    #[error("ptrace {what} of thread {tid}: {err}")]
    Ptrace {
        what: &'static str,
        tid: i32,
        err: std::io::Error,
    },
}

/// One printed frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
    /// `pc - entry` of the physical function; `None` for inlined frames (Go prints none).
    pub offset: Option<u64>,
    pub inlined: bool,
}

/// `created by F in goroutine K`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreatedBy {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub offset: Option<u64>,
    /// The creator's goroutine id (Go ≥ 1.21).
    pub parent_goid: Option<u64>,
}

/// One goroutine.
#[derive(Clone, Debug, Serialize)]
pub struct Goroutine {
    pub goid: u64,
    /// Status without the scan bit (`runtime._G*`).
    pub status_code: u32,
    /// What Go prints between the brackets: the wait reason when waiting, else the status.
    pub status: String,
    /// The GC was scanning its stack (`(scan)`).
    pub scan: bool,
    /// Whole minutes since it blocked (Go's `waitsince`, which the GC sets lazily).
    pub wait_minutes: Option<i64>,
    pub labels: Vec<(String, String)>,
    pub frames: Vec<Frame>,
    pub created_by: Option<CreatedBy>,
    /// Started by a `runtime.` function (Go hides these in its tracebacks).
    pub system: bool,
    /// Status or goid changed while we read it: the frames may be of a different moment.
    pub moved: bool,
    /// Why the stack is missing or cut short, if it is.
    pub note: Option<String>,
}

/// The goroutines of one process.
#[derive(Clone, Debug, Serialize)]
pub struct Dump {
    pub pid: i32,
    pub go_version: String,
    /// Whether the process was stopped (`--lock`) while it was read.
    pub locked: bool,
    pub goroutines: Vec<Goroutine>,
}

/// Options of [`dump`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Stop every thread with ptrace while reading.
    pub lock: bool,
    /// Include the runtime's own goroutines (as `GOTRACEBACK=system`).
    pub system: bool,
}

/// The memory of a live process.
pub struct Mem {
    pid: i32,
}

impl Mem {
    pub fn new(pid: i32) -> Mem {
        Mem { pid }
    }

    /// Reads exactly `buf.len()` bytes at `addr`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Error> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` covers `buf`, which we own mutably; the remote side is only read
        // by the kernel.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n == buf.len() as isize {
            return Ok(());
        }
        let err = if n < 0 {
            std::io::Error::last_os_error()
        } else {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read")
        };
        if err.raw_os_error() == Some(libc::ESRCH) {
            return Err(Error::Exited(self.pid));
        }
        Err(Error::Read {
            pid: self.pid,
            addr,
            err,
        })
    }

    pub fn u64(&self, addr: u64) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

fn proc_err(pid: i32, what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |err| {
        if err.kind() == std::io::ErrorKind::NotFound || err.raw_os_error() == Some(libc::ESRCH) {
            Error::Exited(pid)
        } else {
            Error::Proc { pid, what, err }
        }
    }
}

/// Load bias of the main executable: runtime address − link-time address (0 unless PIE).
fn load_bias(pid: i32, elf: &[u8]) -> Result<u64, Error> {
    // e_type at offset 16: ET_DYN (3) is position-independent.
    if elf.get(16..18) != Some(&3u16.to_le_bytes()[..]) {
        return Ok(0);
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(proc_err(pid, "exe"))?;
    let maps =
        std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(proc_err(pid, "maps"))?;
    let exe = exe.to_string_lossy();
    let exe = exe.trim_end_matches(" (deleted)");
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), _, Some(off)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(2).unwrap_or("");
        if path != exe || u64::from_str_radix(off, 16) != Ok(0) {
            continue;
        }
        let start = range
            .split('-')
            .next()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .unwrap_or(0);
        // The segment mapped at file offset 0 has the lowest vaddr (page-aligned).
        let first_vaddr = lowest_load_vaddr(elf).unwrap_or(0) & !0xfff;
        return Ok(start.wrapping_sub(first_vaddr));
    }
    Err(Error::Proc {
        pid,
        what: "maps",
        err: std::io::Error::other("executable not mapped"),
    })
}

fn lowest_load_vaddr(elf: &[u8]) -> Option<u64> {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let e = object::LittleEndian;
    let h = object::elf::FileHeader64::<object::LittleEndian>::parse(elf).ok()?;
    h.program_headers(e, elf)
        .ok()?
        .iter()
        .filter(|p| p.p_type(e) == object::elf::PT_LOAD)
        .map(|p| p.p_vaddr(e))
        .min()
}

/// Threads of `pid`, held by ptrace until dropped.
struct Stopped {
    tids: Vec<i32>,
}

impl Stopped {
    fn all(pid: i32) -> Result<Stopped, Error> {
        let mut s = Stopped { tids: Vec::new() };
        // New threads may appear while we attach: repeat until a pass finds none.
        loop {
            let mut new = 0;
            let dir =
                std::fs::read_dir(format!("/proc/{pid}/task")).map_err(proc_err(pid, "task"))?;
            for e in dir.flatten() {
                let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) else {
                    continue;
                };
                if s.tids.contains(&tid) {
                    continue;
                }
                // SAFETY: plain ptrace requests on a thread id; no memory is passed.
                let r = unsafe {
                    libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) == 0
                        && libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) == 0
                };
                if !r {
                    let err = std::io::Error::last_os_error();
                    if err.raw_os_error() == Some(libc::ESRCH) {
                        continue; // the thread exited
                    }
                    return Err(Error::Ptrace {
                        what: "attach",
                        tid,
                        err,
                    });
                }
                s.tids.push(tid);
                new += 1;
                let mut st = 0;
                // SAFETY: waits for the group-stop of a thread we seized.
                unsafe { libc::waitpid(tid, &mut st, libc::__WALL) };
            }
            if new == 0 {
                break;
            }
        }
        if s.tids.is_empty() {
            return Err(Error::Exited(pid));
        }
        Ok(s)
    }

    /// `(rip, rsp, rbp)` of a stopped thread.
    fn regs(&self, tid: i32) -> Option<(u64, u64, u64)> {
        if !self.tids.contains(&tid) {
            return None;
        }
        // SAFETY: PTRACE_GETREGS fills a user_regs_struct we own.
        unsafe {
            let mut r: libc::user_regs_struct = std::mem::zeroed();
            if libc::ptrace(libc::PTRACE_GETREGS, tid, 0, &mut r as *mut _) != 0 {
                return None;
            }
            Some((r.rip, r.rsp, r.rbp))
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for &tid in &self.tids {
            // SAFETY: detaching a thread we attached; it resumes.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
        }
    }
}

/// Everything needed to read one process's goroutines.
struct Target<'d> {
    mem: Mem,
    layout: &'static Layout,
    table: GoTable<&'d [u8]>,
    bias: u64,
}

/// The fields of one `g` we use.
#[derive(Clone, Copy, Debug)]
struct G {
    stack_lo: u64,
    stack_hi: u64,
    m: u64,
    sched_sp: u64,
    sched_pc: u64,
    syscallsp: u64,
    syscallpc: u64,
    status: u32,
    goid: u64,
    waitsince: i64,
    waitreason: u8,
    parent_goid: Option<u64>,
    gopc: u64,
    startpc: u64,
    labels: u64,
}

/// Most bytes of a goroutine stack read at once.
const MAX_STACK_READ: u64 = 256 << 10;

/// Bytes of a `g` we read: every field we use is below 400 in the table.
const G_READ: usize = 512;

fn field(b: &[u8], off: u32) -> u64 {
    let o = off as usize;
    b.get(o..o + 8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

impl Target<'_> {
    fn read_g(&self, addr: u64) -> Result<G, Error> {
        let b = self.mem.bytes(addr, G_READ)?;
        let l = self.layout;
        Ok(G {
            stack_lo: field(&b, l.g_stack_lo),
            stack_hi: field(&b, l.g_stack_hi),
            m: field(&b, l.g_m),
            sched_sp: field(&b, l.g_sched_sp),
            sched_pc: field(&b, l.g_sched_pc),
            syscallsp: field(&b, l.g_syscallsp),
            syscallpc: field(&b, l.g_syscallpc),
            status: field(&b, l.g_atomicstatus) as u32,
            goid: field(&b, l.g_goid),
            waitsince: field(&b, l.g_waitsince) as i64,
            waitreason: field(&b, l.g_waitreason) as u8,
            parent_goid: l.g_parent_goid.map(|o| field(&b, o)),
            gopc: field(&b, l.g_gopc),
            startpc: field(&b, l.g_startpc),
            labels: field(&b, l.g_labels),
        })
    }

    /// Logical frames at runtime address `pc` (a return address unless `leaf`).
    fn symbolize(&self, pc: u64, leaf: bool, out: &mut Vec<Frame>) -> Option<String> {
        let link = pc.wrapping_sub(self.bias);
        let kind = if leaf { PcKind::Leaf } else { PcKind::Return };
        let mut frames = Vec::new();
        if self.table.frames(link, kind, &mut frames).is_err() || frames.is_empty() {
            out.push(Frame {
                function: "?".into(),
                file: "?".into(),
                line: 0,
                offset: Some(0),
                inlined: false,
            });
            return None;
        }
        let mut physical = None;
        for f in frames {
            if !f.inlined {
                physical = Some(f.function.to_string());
            }
            out.push(Frame {
                function: f.function.to_string(),
                file: f.file.to_string(),
                line: f.line,
                offset: (!f.inlined).then(|| link.saturating_sub(f.entry)),
                inlined: f.inlined,
            });
        }
        physical
    }

    /// Unwinds from `(pc, sp)` with gopclntab SP deltas, keeping every frame inside
    /// `[lo, hi)`. Returns the frames (innermost first) and why it stopped early, if it did.
    fn unwind(&self, mut pc: u64, mut sp: u64, lo: u64, hi: u64) -> (Vec<Frame>, Option<String>) {
        let mut out = Vec::new();
        let mut leaf = false;
        // The used part of the stack in one read (one snapshot, one system call); words
        // outside it are read one by one.
        let sp0 = sp;
        let stack = if (lo..hi).contains(&sp) {
            self.mem
                .bytes(sp, (hi - sp).min(MAX_STACK_READ) as usize)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let word = |a: u64| -> Result<u64, Error> {
            match a.checked_sub(sp0).map(|o| o as usize) {
                Some(o) if o + 8 <= stack.len() => Ok(field(&stack, o as u32)),
                _ => self.mem.u64(a),
            }
        };
        for _ in 0..1000 {
            if !(lo..hi).contains(&sp) {
                return (
                    out,
                    Some(format!("sp {sp:#x} outside the stack [{lo:#x}, {hi:#x})")),
                );
            }
            let link = pc.wrapping_sub(self.bias);
            let info = match self.table.func_at(link) {
                Ok(Some(f)) => f,
                _ => {
                    return (out, Some(format!("pc {pc:#x} is not in a Go function")));
                }
            };
            let (name, top) = (info.name.to_string(), info.flags.top_frame());
            if name == "runtime.goexit" || top {
                break;
            }
            self.symbolize(pc, leaf, &mut out);
            leaf = false;
            let Ok(Some(delta)) = self.table.sp_delta(link) else {
                return (out, Some(format!("no SP delta for {name}")));
            };
            // The frame's return address sits just above its locals.
            let fp = sp.wrapping_add(delta as u64).wrapping_add(8);
            if !(lo..hi).contains(&fp.wrapping_sub(8)) {
                return (out, Some(format!("frame of {name} leaves the stack")));
            }
            match word(fp.wrapping_sub(8)) {
                Ok(ret) => pc = ret,
                Err(e) => return (out, Some(e.to_string())),
            }
            if pc == 0 {
                break;
            }
            sp = fp;
        }
        (out, None)
    }

    fn labels(&self, ptr: u64) -> Result<Vec<(String, String)>, Error> {
        const MAX: u64 = 64;
        let mut out = Vec::new();
        if ptr == 0 {
            return Ok(out);
        }
        let string = |p: u64, n: u64| -> Result<String, Error> {
            if n > 4096 {
                return Ok(String::from("<too long>"));
            }
            Ok(String::from_utf8_lossy(&self.mem.bytes(p, n as usize)?).into_owned())
        };
        match self.layout.labels {
            LabelsRepr::Slice => {
                let (arr, len) = (self.mem.u64(ptr)?, self.mem.u64(ptr + 8)?);
                for i in 0..len.min(MAX) {
                    let e = self
                        .mem
                        .bytes(arr + i * u64::from(layout::LABEL_SIZE), 32)?;
                    out.push((
                        string(field(&e, 0), field(&e, 8))?,
                        string(field(&e, 16), field(&e, 24))?,
                    ));
                }
            }
            LabelsRepr::Map => {
                // *labelMap → *hmap; walk the 2^B buckets and their overflow chains.
                let h = self.mem.u64(ptr)?;
                if h == 0 {
                    return Ok(out);
                }
                let hb = self.mem.bytes(h, 24)?;
                let b = hb[layout::HMAP_B as usize];
                let buckets = field(&hb, layout::HMAP_BUCKETS);
                if b > 8 || buckets == 0 {
                    return Ok(out);
                }
                let size = u64::from(layout::MAP_BUCKET_STRING_STRING);
                for i in 0..(1u64 << b) {
                    let mut bucket = buckets + i * size;
                    for _ in 0..16 {
                        let bb = self.mem.bytes(bucket, size as usize)?;
                        for slot in 0..8usize {
                            // tophash ≤ 1 (emptyRest, emptyOne) marks a free slot.
                            if bb[slot] <= 1 || out.len() as u64 >= MAX {
                                continue;
                            }
                            let k = 8 + slot as u32 * 16;
                            let v = 8 + 128 + slot as u32 * 16;
                            out.push((
                                string(field(&bb, k), field(&bb, k + 8))?,
                                string(field(&bb, v), field(&bb, v + 8))?,
                            ));
                        }
                        bucket = field(&bb, 8 + 256);
                        if bucket == 0 {
                            break;
                        }
                    }
                }
                out.sort();
            }
        }
        Ok(out)
    }

    fn is_system(&self, startpc: u64) -> bool {
        match self.table.func_at(startpc.wrapping_sub(self.bias)) {
            Ok(Some(f)) => f.name.starts_with("runtime.") && f.name != "runtime.main",
            _ => false,
        }
    }

    fn created_by(&self, g: &G) -> Option<CreatedBy> {
        if g.gopc == 0 || g.goid == 1 {
            return None;
        }
        let mut frames = Vec::new();
        let physical = self.symbolize(g.gopc, false, &mut frames)?;
        if !shown(&physical) {
            return None;
        }
        let inner = frames.first()?;
        let link = g.gopc.wrapping_sub(self.bias);
        let entry = self.table.func_at(link).ok()??.entry;
        Some(CreatedBy {
            function: physical,
            file: inner.file.clone(),
            line: inner.line,
            offset: (link > entry).then(|| link - entry),
            parent_goid: g.parent_goid.filter(|&p| p != 0),
        })
    }
}

/// Go's `showfuncinfo` at the default `GOTRACEBACK`: runtime internals are hidden.
fn shown(name: &str) -> bool {
    if !name.contains('.') {
        return false;
    }
    match name.strip_prefix("runtime.") {
        Some(rest) => rest.starts_with(|c: char| c.is_ascii_uppercase()),
        None => true,
    }
}

/// Monotonic clock, as the runtime's `nanotime`.
fn nanotime() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Reads every goroutine of process `pid`.
pub fn dump(pid: i32, opts: Options) -> Result<Dump, Error> {
    let elf = std::fs::read(format!("/proc/{pid}/exe")).map_err(proc_err(pid, "exe"))?;
    let bi = buildinfo::read(&elf)?;
    let go_version = bi.go_version.ok_or(Error::NoVersion)?;
    let version = gopclntab::parse_go_version(&go_version).ok_or(Error::NoVersion)?;
    let layout = layout::layout_for(version).ok_or(Error::UnknownVersion(version.0, version.1))?;
    let table = GoTable::parse(&elf[..])?.with_go_version(&go_version);
    let Allgs { allgs, .. } = binary::find_allgs(&elf)?;
    let bias = load_bias(pid, &elf)?;
    let stopped = if opts.lock {
        Some(Stopped::all(pid)?)
    } else {
        None
    };
    let t = Target {
        mem: Mem::new(pid),
        layout,
        table,
        bias,
    };
    let hdr = t.mem.bytes(allgs.wrapping_add(bias), 16)?;
    let (arr, len) = (field(&hdr, 0), field(&hdr, 8));
    if len > 10_000_000 {
        return Err(Error::BadAllgs(len));
    }
    let ptrs = t.mem.bytes(arr, len as usize * 8)?;
    let now = nanotime();
    let mut goroutines = Vec::new();
    for w in ptrs.chunks_exact(8) {
        let gaddr = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        if gaddr == 0 {
            continue;
        }
        let g = match t.read_g(gaddr) {
            Ok(g) => g,
            Err(Error::Exited(p)) => return Err(Error::Exited(p)),
            Err(_) => continue,
        };
        let st = g.status & !status::SCAN;
        if matches!(st, status::DEAD | status::IDLE | status::DEADEXTRA) {
            continue;
        }
        let system = t.is_system(g.startpc);
        if system && !opts.system {
            continue;
        }
        let mut note = None;
        let (frames, cut) = match st {
            status::RUNNING => {
                // g.sched is stale: only the thread's registers say where it is.
                let regs = stopped.as_ref().and_then(|s| {
                    let procid = t.mem.u64(g.m + u64::from(layout.m_procid)).ok()?;
                    s.regs(procid as i32)
                });
                match regs {
                    Some((rip, rsp, _)) => t.unwind_leaf(rip, rsp, g.stack_lo, g.stack_hi),
                    None => {
                        note = Some("goroutine running on other thread; stack unavailable".into());
                        (Vec::new(), None)
                    }
                }
            }
            status::COPYSTACK => {
                note = Some("stack being copied; unavailable".into());
                (Vec::new(), None)
            }
            // As the runtime's traceback: a goroutine in (or entering) a system call
            // resumes from its syscall pc/sp.
            _ if g.syscallsp != 0 => t.unwind(g.syscallpc, g.syscallsp, g.stack_lo, g.stack_hi),
            _ => t.unwind(g.sched_pc, g.sched_sp, g.stack_lo, g.stack_hi),
        };
        let frames: Vec<Frame> = if opts.system {
            frames
        } else {
            frames.into_iter().filter(|f| shown(&f.function)).collect()
        };
        if note.is_none() {
            note = cut;
        }
        let status_text = match st {
            status::WAITING | status::LEAKED if g.waitreason != 0 => {
                layout::wait_reason(version, g.waitreason)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("wait reason {}", g.waitreason))
            }
            _ => layout::status_string(version, st).to_string(),
        };
        let wait_minutes = (matches!(st, status::WAITING | status::SYSCALL) && g.waitsince != 0)
            .then(|| (now - g.waitsince) / 60_000_000_000)
            .filter(|&m| m >= 1);
        let labels = t.labels(g.labels).unwrap_or_default();
        let created_by = t.created_by(&g);
        // Read again: a goroutine that ran meanwhile has other frames than we read.
        let moved = match t.read_g(gaddr) {
            Ok(again) => again.goid != g.goid || again.status != g.status,
            Err(Error::Exited(p)) => return Err(Error::Exited(p)),
            Err(_) => true,
        };
        goroutines.push(Goroutine {
            goid: g.goid,
            status_code: st,
            status: status_text,
            scan: g.status & status::SCAN != 0,
            wait_minutes,
            labels,
            frames,
            created_by,
            system,
            moved,
            note,
        });
    }
    // The process may have exited after our last read: say so rather than print a partial
    // picture of a process that is gone.
    if std::fs::metadata(format!("/proc/{pid}/exe")).is_err() {
        return Err(Error::Exited(pid));
    }
    drop(stopped);
    Ok(Dump {
        pid,
        go_version,
        locked: opts.lock,
        goroutines,
    })
}

impl Target<'_> {
    /// Unwind of a stopped running goroutine: the innermost pc is exact, not a return
    /// address.
    fn unwind_leaf(&self, pc: u64, sp: u64, lo: u64, hi: u64) -> (Vec<Frame>, Option<String>) {
        let mut first = Vec::new();
        self.symbolize(pc, true, &mut first);
        let link = pc.wrapping_sub(self.bias);
        let Ok(Some(delta)) = self.table.sp_delta(link) else {
            return (first, Some("no SP delta at the thread's pc".into()));
        };
        let fp = sp.wrapping_add(delta as u64).wrapping_add(8);
        if !(lo..hi).contains(&fp.wrapping_sub(8)) {
            return (
                first,
                Some("the thread's sp is outside the goroutine stack".into()),
            );
        }
        let Ok(ret) = self.mem.u64(fp.wrapping_sub(8)) else {
            return (first, Some("unreadable return address".into()));
        };
        let (rest, cut) = self.unwind(ret, fp, lo, hi);
        first.extend(rest);
        (first, cut)
    }
}

/// Writes `d` as Go's own traceback (`runtime.Stack(buf, true)`) prints goroutines.
pub fn write_text(d: &Dump, out: &mut dyn Write) -> std::io::Result<()> {
    for (i, g) in d.goroutines.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write!(out, "goroutine {} [{}", g.goid, g.status)?;
        if g.scan {
            write!(out, " (scan)")?;
        }
        if let Some(m) = g.wait_minutes {
            write!(out, ", {m} minutes")?;
        }
        write!(out, "]:")?;
        if !g.labels.is_empty() {
            let l: Vec<String> = g
                .labels
                .iter()
                .map(|(k, v)| format!("{k:?}: {v:?}"))
                .collect();
            write!(out, " {{{}}}", l.join(", "))?;
        }
        if g.moved {
            write!(out, " (changed while read)")?;
        }
        writeln!(out)?;
        if let Some(n) = &g.note {
            writeln!(out, "\t{n}")?;
        }
        for f in &g.frames {
            writeln!(out, "{}(...)", f.function)?;
            match f.offset {
                Some(o) => writeln!(out, "\t{}:{} +{o:#x}", f.file, f.line)?,
                None => writeln!(out, "\t{}:{}", f.file, f.line)?,
            }
        }
        if let Some(c) = &g.created_by {
            write!(out, "created by {}", c.function)?;
            if let Some(p) = c.parent_goid {
                write!(out, " in goroutine {p}")?;
            }
            writeln!(out)?;
            match c.offset {
                Some(o) => writeln!(out, "\t{}:{} +{o:#x}", c.file, c.line)?,
                None => writeln!(out, "\t{}:{}", c.file, c.line)?,
            }
        }
    }
    Ok(())
}

/// `gprof-bpf dump`: reads process `pid` and prints its goroutines to stdout.
pub fn run(pid: i32, json: bool, lock: bool, system: bool) -> anyhow::Result<()> {
    let d = dump(pid, Options { lock, system })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &d)?;
        writeln!(out)?;
    } else {
        write_text(&d, &mut out)?;
    }
    out.flush()?;
    Ok(())
}
