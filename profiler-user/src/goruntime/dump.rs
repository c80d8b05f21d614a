//! `gprof-bpf dump`: every goroutine of a running Go process, read from outside.
//!
//! The process is read with `process_vm_readv` without stopping it (or, with `lock`, while
//! every thread is held by ptrace): `runtime.allgs` (found by [`super::binary::find_allgs`],
//! stripped binaries included) → each `g` → its status, wait reason, labels and creator, and
//! its stack unwound from the saved `g.sched` (or `g.syscallsp/pc` in a system call) with the
//! SP deltas of gopclntab, the way the runtime's own traceback does. Every frame must stay
//! inside the goroutine's `[stack.lo, stack.hi)`; status, goid and the unwind's starting pc/sp
//! are read again after the unwind and a goroutine that changed meanwhile is marked `moved`.
//!
//! Speed (10,000 goroutines in well under 100 ms): goroutines are read in batches of
//! `BATCH`, each with three `process_vm_readv` calls of many iovecs (the `g`s, their used
//! stacks, the `g`s again) instead of three per goroutine, and every return address is
//! symbolized and formatted once per dump (`PcInfo`), shared by the goroutines parked there.
//! See docs/goroutines.md.

use super::binary::{self, Allgs};
use super::layout::{self, LabelsRepr, Layout, status};
use crate::symbolize::buildinfo;
use crate::symbolize::gopclntab::{self, GoTable, PcKind};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;

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

    /// Reads every `(addr, len)` of `reqs` into consecutive parts of `buf` (resized to their
    /// total) with as few system calls as possible (up to 1024 ranges per
    /// `process_vm_readv`); `ok[i]` says whether range `i` was read whole, as [`Mem::read`]
    /// of it alone would.
    fn read_many(
        &self,
        reqs: &[(u64, usize)],
        buf: &mut Vec<u8>,
        ok: &mut Vec<bool>,
    ) -> Result<(), Error> {
        const IOV_MAX: usize = 1024;
        let total = reqs.iter().map(|r| r.1).sum();
        buf.clear();
        buf.resize(total, 0);
        ok.clear();
        ok.resize(reqs.len(), false);
        let mut offs = Vec::with_capacity(reqs.len());
        let mut o = 0;
        for r in reqs {
            offs.push(o);
            o += r.1;
        }
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < reqs.len() {
            let j = (i + IOV_MAX).min(reqs.len());
            local.clear();
            remote.clear();
            for k in i..j {
                let (addr, len) = reqs[k];
                local.push(libc::iovec {
                    // SAFETY: offs[k] + len ≤ buf.len() by construction.
                    iov_base: unsafe { buf.as_mut_ptr().add(offs[k]) }.cast(),
                    iov_len: len,
                });
                remote.push(libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: len,
                });
            }
            // SAFETY: every local iovec covers a distinct part of `buf`, which we own
            // mutably; the remote side is only read by the kernel.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
                    return Err(Error::Exited(self.pid));
                }
                // Nothing was read: the first range failed.
                i += 1;
                continue;
            }
            // The kernel copies the ranges in order and stops at the first it cannot read
            // whole: those before it are complete, it failed, the next call goes on after it.
            let mut left = n as usize;
            let mut k = i;
            while k < j && left >= reqs[k].1 {
                left -= reqs[k].1;
                ok[k] = true;
                k += 1;
            }
            i = if k == j { j } else { k + 1 };
        }
        Ok(())
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

/// One return address (or the leaf pc of a stopped thread), symbolized once per dump:
/// goroutines parked in the same places share most of their PCs.
struct PcInfo {
    /// Raw name of the physical function and whether the unwind ends there
    /// (`runtime.goexit` or a top frame); `None` when `pc` is not in a Go function.
    func: Option<(String, bool)>,
    /// SP delta at `pc`.
    sp_delta: Option<i32>,
    /// Its logical frames, innermost first, without the runtime internals Go hides (unless
    /// `system`).
    frames: Vec<Frame>,
    /// `frames` as [`write_text`] prints them.
    text: Vec<u8>,
}

/// `created by` of one `gopc`, but the creator's goroutine id.
#[derive(Clone)]
struct Creator {
    function: String,
    file: String,
    line: u32,
    offset: Option<u64>,
}

/// Everything needed to read one process's goroutines.
struct Target<'d> {
    mem: Mem,
    layout: &'static Layout,
    table: GoTable<&'d [u8]>,
    bias: u64,
    /// Keep the runtime's own frames (`GOTRACEBACK=system`).
    system: bool,
    /// Per-dump caches, by runtime address: return PCs, `gopc`s, `startpc`s.
    pcs: RefCell<HashMap<u64, Rc<PcInfo>>>,
    creators: RefCell<HashMap<u64, Option<Creator>>>,
    starts: RefCell<HashMap<u64, bool>>,
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

impl G {
    /// Where the unwind of a goroutine that is not running starts: as the runtime's
    /// traceback, one in (or entering) a system call resumes from its syscall pc/sp.
    fn resume(&self) -> (u64, u64) {
        if self.syscallsp != 0 {
            (self.syscallpc, self.syscallsp)
        } else {
            (self.sched_pc, self.sched_sp)
        }
    }
}

/// Most bytes of a goroutine stack read at once.
const MAX_STACK_READ: u64 = 256 << 10;

/// Bytes of a `g` we read: every field we use is below 400 in the table.
const G_READ: usize = 512;

/// Goroutines read per batch: their `g`s in one system call, then their stacks, then their
/// `g`s again to see which changed. Small, so that each goroutine's reads stay close in time.
const BATCH: usize = 128;

/// Most stack bytes read by one system call.
const BATCH_STACK_BYTES: usize = 4 << 20;

fn field(b: &[u8], off: u32) -> u64 {
    let o = off as usize;
    b.get(o..o + 8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

/// How one goroutine's frames are found.
#[derive(Clone, Copy)]
enum How {
    /// From its saved `(pc, sp)`.
    Unwind(u64, u64),
    /// Running: only its thread's registers say where it is.
    Running,
    /// Its stack is being copied.
    CopyStack,
}

/// A goroutine of the current batch, between its reads.
struct Pending {
    gaddr: u64,
    g: G,
    st: u32,
    system: bool,
    how: How,
    pcs: Vec<Rc<PcInfo>>,
    note: Option<String>,
}

/// One goroutine as read: its frames are shared with the other goroutines at the same PCs.
struct Read {
    /// Everything but `frames`.
    g: Goroutine,
    pcs: Vec<Rc<PcInfo>>,
}

impl Read {
    fn into_goroutine(self) -> Goroutine {
        let mut g = self.g;
        g.frames = self
            .pcs
            .iter()
            .flat_map(|p| p.frames.iter().cloned())
            .collect();
        g
    }
}

impl Target<'_> {
    fn parse_g(&self, b: &[u8]) -> G {
        let l = self.layout;
        G {
            stack_lo: field(b, l.g_stack_lo),
            stack_hi: field(b, l.g_stack_hi),
            m: field(b, l.g_m),
            sched_sp: field(b, l.g_sched_sp),
            sched_pc: field(b, l.g_sched_pc),
            syscallsp: field(b, l.g_syscallsp),
            syscallpc: field(b, l.g_syscallpc),
            status: field(b, l.g_atomicstatus) as u32,
            goid: field(b, l.g_goid),
            waitsince: field(b, l.g_waitsince) as i64,
            waitreason: field(b, l.g_waitreason) as u8,
            parent_goid: l.g_parent_goid.map(|o| field(b, o)),
            gopc: field(b, l.g_gopc),
            startpc: field(b, l.g_startpc),
            labels: field(b, l.g_labels),
        }
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

    /// What the unwinder needs at `pc`, from the cache for return addresses.
    fn pc_info(&self, pc: u64, leaf: bool) -> Rc<PcInfo> {
        if !leaf && let Some(i) = self.pcs.borrow().get(&pc) {
            return i.clone();
        }
        let link = pc.wrapping_sub(self.bias);
        let func = match self.table.func_at(link) {
            Ok(Some(f)) => Some((
                f.name.to_string(),
                f.name == "runtime.goexit" || f.flags.top_frame(),
            )),
            _ => None,
        };
        let mut frames = Vec::new();
        self.symbolize(pc, leaf, &mut frames);
        if !self.system {
            frames.retain(|f| shown(&f.function));
        }
        let mut text = Vec::new();
        for f in &frames {
            let _ = write_frame(f, &mut text);
        }
        let info = Rc::new(PcInfo {
            func,
            sp_delta: self.table.sp_delta(link).ok().flatten(),
            frames,
            text,
        });
        if !leaf {
            self.pcs.borrow_mut().insert(pc, info.clone());
        }
        info
    }

    /// Unwinds from `(pc, sp)` with gopclntab SP deltas, keeping every frame inside
    /// `[lo, hi)`. `stack` holds the memory from `sp0` (the used part of the stack, read at
    /// once); words outside it are read one by one. Returns the frames (innermost first) and
    /// why it stopped early, if it did.
    fn unwind(
        &self,
        mut pc: u64,
        mut sp: u64,
        lo: u64,
        hi: u64,
        stack: &[u8],
        sp0: u64,
    ) -> (Vec<Rc<PcInfo>>, Option<String>) {
        let mut out = Vec::new();
        let word = |a: u64| -> Result<u64, Error> {
            match a.checked_sub(sp0).and_then(|o| usize::try_from(o).ok()) {
                Some(o) if o.checked_add(8).is_some_and(|e| e <= stack.len()) => Ok(
                    u64::from_le_bytes(stack[o..o + 8].try_into().unwrap_or([0; 8])),
                ),
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
            let info = self.pc_info(pc, false);
            let Some((name, stop)) = &info.func else {
                return (out, Some(format!("pc {pc:#x} is not in a Go function")));
            };
            if *stop {
                break;
            }
            let delta = info.sp_delta;
            out.push(info.clone());
            let Some(delta) = delta else {
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

    /// Unwind of a stopped running goroutine: the innermost pc is exact, not a return
    /// address.
    fn unwind_leaf(&self, pc: u64, sp: u64, lo: u64, hi: u64) -> (Vec<Rc<PcInfo>>, Option<String>) {
        let first = self.pc_info(pc, true);
        let delta = first.sp_delta;
        let mut out = vec![first];
        let Some(delta) = delta else {
            return (out, Some("no SP delta at the thread's pc".into()));
        };
        let fp = sp.wrapping_add(delta as u64).wrapping_add(8);
        if !(lo..hi).contains(&fp.wrapping_sub(8)) {
            return (
                out,
                Some("the thread's sp is outside the goroutine stack".into()),
            );
        }
        let Ok(ret) = self.mem.u64(fp.wrapping_sub(8)) else {
            return (out, Some("unreadable return address".into()));
        };
        let stack = if (lo..hi).contains(&fp) {
            self.mem
                .bytes(fp, (hi - fp).min(MAX_STACK_READ) as usize)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let (rest, cut) = self.unwind(ret, fp, lo, hi, &stack, fp);
        out.extend(rest);
        (out, cut)
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
                // The slice header, its entries and their strings: three system calls.
                let hdr = self.mem.bytes(ptr, 16)?;
                let (arr, len) = (field(&hdr, 0), field(&hdr, 8));
                let n = len.min(MAX) as usize;
                if n == 0 {
                    return Ok(out);
                }
                let size = layout::LABEL_SIZE as usize;
                let es = self.mem.bytes(arr, (n - 1) * size + 32)?;
                let mut reqs = Vec::with_capacity(2 * n);
                for i in 0..n {
                    let e = &es[i * size..i * size + 32];
                    for (p, l) in [(0, 8), (16, 24)] {
                        let len = field(e, l);
                        reqs.push((field(e, p), if len > 4096 { 0 } else { len as usize }));
                    }
                }
                let (mut buf, mut ok) = (Vec::new(), Vec::new());
                self.mem.read_many(&reqs, &mut buf, &mut ok)?;
                if let Some(i) = ok.iter().position(|&o| !o) {
                    return Err(Error::Read {
                        pid: self.mem.pid,
                        addr: reqs[i].0,
                        err: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read"),
                    });
                }
                let mut at = 0;
                let mut strs = reqs.iter().enumerate().map(|(i, &(_, l))| {
                    let e = &es[(i / 2) * size..(i / 2) * size + 32];
                    let s = if field(e, if i % 2 == 0 { 8 } else { 24 }) > 4096 {
                        String::from("<too long>")
                    } else {
                        String::from_utf8_lossy(&buf[at..at + l]).into_owned()
                    };
                    at += l;
                    s
                });
                while let (Some(k), Some(v)) = (strs.next(), strs.next()) {
                    out.push((k, v));
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
        if let Some(&s) = self.starts.borrow().get(&startpc) {
            return s;
        }
        let s = match self.table.func_at(startpc.wrapping_sub(self.bias)) {
            Ok(Some(f)) => f.name.starts_with("runtime.") && f.name != "runtime.main",
            _ => false,
        };
        self.starts.borrow_mut().insert(startpc, s);
        s
    }

    fn created_by(&self, g: &G) -> Option<CreatedBy> {
        if g.gopc == 0 || g.goid == 1 {
            return None;
        }
        let cached = self.creators.borrow().get(&g.gopc).cloned();
        let c = match cached {
            Some(c) => c,
            None => {
                let c = self.creator(g.gopc);
                self.creators.borrow_mut().insert(g.gopc, c.clone());
                c
            }
        }?;
        Some(CreatedBy {
            function: c.function,
            file: c.file,
            line: c.line,
            offset: c.offset,
            parent_goid: g.parent_goid.filter(|&p| p != 0),
        })
    }

    fn creator(&self, gopc: u64) -> Option<Creator> {
        let mut frames = Vec::new();
        let physical = self.symbolize(gopc, false, &mut frames)?;
        if !shown(&physical) {
            return None;
        }
        let inner = frames.first()?;
        let link = gopc.wrapping_sub(self.bias);
        let entry = self.table.func_at(link).ok()??.entry;
        Some(Creator {
            function: physical,
            file: inner.file.clone(),
            line: inner.line,
            offset: (link > entry).then(|| link - entry),
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
    let (go_version, reads) = read_all(pid, opts)?;
    Ok(Dump {
        pid,
        go_version,
        locked: opts.lock,
        goroutines: reads.into_iter().map(Read::into_goroutine).collect(),
    })
}

/// [`dump`] with each goroutine's frames still shared: the Go version and the goroutines.
fn read_all(pid: i32, opts: Options) -> Result<(String, Vec<Read>), Error> {
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
        system: opts.system,
        pcs: RefCell::default(),
        creators: RefCell::default(),
        starts: RefCell::default(),
    };
    let hdr = t.mem.bytes(allgs.wrapping_add(bias), 16)?;
    let (arr, len) = (field(&hdr, 0), field(&hdr, 8));
    if len > 10_000_000 {
        return Err(Error::BadAllgs(len));
    }
    let ptrs = t.mem.bytes(arr, len as usize * 8)?;
    let gaddrs: Vec<u64> = ptrs
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .filter(|&a| a != 0)
        .collect();
    let now = nanotime();
    let mut goroutines = Vec::with_capacity(gaddrs.len());
    let (mut buf, mut ok, mut reqs) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending: Vec<Pending> = Vec::with_capacity(BATCH);
    for batch in gaddrs.chunks(BATCH) {
        // 1. The batch's `g`s, in one system call.
        reqs.clear();
        reqs.extend(batch.iter().map(|&a| (a, G_READ)));
        t.mem.read_many(&reqs, &mut buf, &mut ok)?;
        pending.clear();
        for (i, &gaddr) in batch.iter().enumerate() {
            if !ok[i] {
                continue;
            }
            let g = t.parse_g(&buf[i * G_READ..(i + 1) * G_READ]);
            let st = g.status & !status::SCAN;
            if matches!(st, status::DEAD | status::IDLE | status::DEADEXTRA) {
                continue;
            }
            let system = t.is_system(g.startpc);
            if system && !opts.system {
                continue;
            }
            let how = match st {
                status::RUNNING => How::Running,
                status::COPYSTACK => How::CopyStack,
                _ => {
                    let (pc, sp) = g.resume();
                    How::Unwind(pc, sp)
                }
            };
            pending.push(Pending {
                gaddr,
                g,
                st,
                system,
                how,
                pcs: Vec::new(),
                note: None,
            });
        }
        // 2. Their stacks: the used part of each (one snapshot), a few MiB per system call.
        let mut i = 0;
        while i < pending.len() {
            reqs.clear();
            let (mut j, mut bytes) = (i, 0);
            while j < pending.len() && (j == i || bytes < BATCH_STACK_BYTES) {
                let p = &pending[j];
                let (lo, hi) = (p.g.stack_lo, p.g.stack_hi);
                let len = match p.how {
                    How::Unwind(_, sp) if (lo..hi).contains(&sp) => {
                        (hi - sp).min(MAX_STACK_READ) as usize
                    }
                    _ => 0,
                };
                let sp = if let How::Unwind(_, sp) = p.how {
                    sp
                } else {
                    0
                };
                reqs.push((sp, len));
                bytes += len;
                j += 1;
            }
            t.mem.read_many(&reqs, &mut buf, &mut ok)?;
            let mut at = 0;
            for (k, p) in pending[i..j].iter_mut().enumerate() {
                let (sp0, len) = reqs[k];
                let stack = if ok[k] { &buf[at..at + len] } else { &[][..] };
                at += len;
                let (lo, hi) = (p.g.stack_lo, p.g.stack_hi);
                let (pcs, cut) = match p.how {
                    How::Running => {
                        let regs = stopped.as_ref().and_then(|s| {
                            let procid = t.mem.u64(p.g.m + u64::from(layout.m_procid)).ok()?;
                            s.regs(procid as i32)
                        });
                        match regs {
                            Some((rip, rsp, _)) => t.unwind_leaf(rip, rsp, lo, hi),
                            None => {
                                p.note = Some(
                                    "goroutine running on other thread; stack unavailable".into(),
                                );
                                (Vec::new(), None)
                            }
                        }
                    }
                    How::CopyStack => {
                        p.note = Some("stack being copied; unavailable".into());
                        (Vec::new(), None)
                    }
                    How::Unwind(pc, sp) => t.unwind(pc, sp, lo, hi, stack, sp0),
                };
                p.pcs = pcs;
                if p.note.is_none() {
                    p.note = cut;
                }
            }
            i = j;
        }
        // 3. Labels and creators; then the `g`s again: a goroutine that ran meanwhile has
        // other frames than we read.
        let labels: Vec<_> = pending
            .iter()
            .map(|p| t.labels(p.g.labels).unwrap_or_default())
            .collect();
        reqs.clear();
        reqs.extend(pending.iter().map(|p| (p.gaddr, G_READ)));
        t.mem.read_many(&reqs, &mut buf, &mut ok)?;
        for ((k, p), labels) in pending.drain(..).enumerate().zip(labels) {
            let g = p.g;
            let moved = !ok[k] || {
                let again = t.parse_g(&buf[k * G_READ..(k + 1) * G_READ]);
                again.goid != g.goid
                    || again.status != g.status
                    || matches!(p.how, How::Unwind(pc, sp) if again.resume() != (pc, sp))
            };
            let st = p.st;
            let status_text = match st {
                status::WAITING | status::LEAKED if g.waitreason != 0 => {
                    layout::wait_reason(version, g.waitreason)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("wait reason {}", g.waitreason))
                }
                _ => layout::status_string(version, st).to_string(),
            };
            let wait_minutes = (matches!(st, status::WAITING | status::SYSCALL)
                && g.waitsince != 0)
                .then(|| (now - g.waitsince) / 60_000_000_000)
                .filter(|&m| m >= 1);
            goroutines.push(Read {
                g: Goroutine {
                    goid: g.goid,
                    status_code: st,
                    status: status_text,
                    scan: g.status & status::SCAN != 0,
                    wait_minutes,
                    labels,
                    frames: Vec::new(),
                    created_by: t.created_by(&g),
                    system: p.system,
                    moved,
                    note: p.note,
                },
                pcs: p.pcs,
            });
        }
    }
    // The process may have exited after our last read: say so rather than print a partial
    // picture of a process that is gone.
    if std::fs::metadata(format!("/proc/{pid}/exe")).is_err() {
        return Err(Error::Exited(pid));
    }
    drop(stopped);
    Ok((go_version, goroutines))
}

/// A goroutine's first line (and the note on its stack, if any).
fn write_head(g: &Goroutine, first: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if !first {
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
    Ok(())
}

fn write_frame(f: &Frame, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}(...)", f.function)?;
    match f.offset {
        Some(o) => writeln!(out, "\t{}:{} +{o:#x}", f.file, f.line),
        None => writeln!(out, "\t{}:{}", f.file, f.line),
    }
}

fn write_created_by(g: &Goroutine, out: &mut dyn Write) -> std::io::Result<()> {
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
    Ok(())
}

/// Writes `d` as Go's own traceback (`runtime.Stack(buf, true)`) prints goroutines.
pub fn write_text(d: &Dump, out: &mut dyn Write) -> std::io::Result<()> {
    for (i, g) in d.goroutines.iter().enumerate() {
        write_head(g, i == 0, out)?;
        for f in &g.frames {
            write_frame(f, out)?;
        }
        write_created_by(g, out)?;
    }
    Ok(())
}

/// [`write_text`] of goroutines as read: each PC's frames were formatted once.
fn write_reads(reads: &[Read], out: &mut dyn Write) -> std::io::Result<()> {
    for (i, r) in reads.iter().enumerate() {
        write_head(&r.g, i == 0, out)?;
        for p in &r.pcs {
            out.write_all(&p.text)?;
        }
        write_created_by(&r.g, out)?;
    }
    Ok(())
}

/// `gprof-bpf dump`: reads process `pid` and prints its goroutines to stdout.
pub fn run(pid: i32, json: bool, lock: bool, system: bool) -> anyhow::Result<()> {
    let opts = Options { lock, system };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    if json {
        let d = dump(pid, opts)?;
        serde_json::to_writer_pretty(&mut out, &d)?;
        writeln!(out)?;
        // The process exits next: freeing every frame string one by one is wasted time.
        std::mem::forget(d);
    } else {
        let (_, reads) = read_all(pid, opts)?;
        write_reads(&reads, &mut out)?;
        std::mem::forget(reads);
    }
    out.flush()?;
    Ok(())
}
