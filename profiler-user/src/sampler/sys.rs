//! The two kernel interfaces aya 0.14 does not wrap the way the sampler needs them: perf
//! events whose period can be changed while they run (`PERF_EVENT_IOC_PERIOD`; aya keeps
//! no perf fd once it has made a BPF link), and batched map draining
//! (`BPF_MAP_LOOKUP_AND_DELETE_BATCH`).

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (112 bytes): the fields a software
/// cpu-clock event uses. The kernel accepts any published size and zero-fills the rest.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit field: disabled = bit 0, freq = bit 10, ...
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved_2: u16,
}
const _: () = assert!(size_of::<PerfEventAttr>() == 112);

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_ATTR_FLAG_DISABLED: u64 = 1;
// _IO('$', n) and _IOW('$', 4, __u64): the ioctls of include/uapi/linux/perf_event.h.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;
const PERF_EVENT_IOC_PERIOD: libc::c_ulong = 0x4008_2404;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;

/// Opens a disabled cpu-clock event on `cpu` for every process, sampling every `period_ns`.
pub fn open_cpu_clock(cpu: u32, period_ns: u64) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_CPU_CLOCK,
        sample_period: period_ns,
        flags: PERF_ATTR_FLAG_DISABLED,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: perf_event_open reads `attr` (valid, sized by its `size` field) and returns a
    // new fd or -1; pid -1 with a cpu means every process on that CPU.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn ioctl(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: perf ioctls on a perf fd we own; `arg` is a value or a pointer to a live u64.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs BPF program `prog` on every overflow of the perf event, and enables it.
pub fn attach_bpf(perf: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    ioctl(
        perf,
        PERF_EVENT_IOC_SET_BPF,
        prog.as_raw_fd() as libc::c_ulong,
    )?;
    ioctl(perf, PERF_EVENT_IOC_ENABLE, 0)
}

/// Stops the event: no more samples from it.
pub fn disable(perf: BorrowedFd<'_>) -> io::Result<()> {
    ioctl(perf, PERF_EVENT_IOC_DISABLE, 0)
}

/// Changes the sampling period of a running event; it applies from the next sample on.
pub fn set_period(perf: BorrowedFd<'_>, period_ns: u64) -> io::Result<()> {
    let period = period_ns;
    ioctl(
        perf,
        PERF_EVENT_IOC_PERIOD,
        &period as *const u64 as libc::c_ulong,
    )
}

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
/// The kernel's internal "not supported" errno, which bpf(2) returns to userspace.
const ENOTSUPP: i32 = 524;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Empties a BPF hash map in batches, passing every (key, value) to `each`. Returns false
/// when the kernel does not support batch operations on this map (the caller then falls back
/// to per-key calls).
pub fn drain_hash_map<K: Copy + Default, V: Copy + Default>(
    map: BorrowedFd<'_>,
    chunk: usize,
    mut each: impl FnMut(K, V),
) -> io::Result<bool> {
    let mut chunk = chunk.max(64);
    let mut keys = vec![K::default(); chunk];
    let mut values = vec![V::default(); chunk];
    // Hash maps use a bucket index as the batch token; 8 bytes covers every map type.
    let mut token_in = 0u64;
    let mut token_out = 0u64;
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &token_in as *const u64 as u64
            },
            out_batch: &mut token_out as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: bpf(2) reads the attr and writes at most `count` keys and values into the
        // two buffers, which hold `chunk` elements of the map's key and value types (the
        // callers pass the types the map was declared with), and one token into `token_out`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let n = (attr.count as usize).min(chunk);
        for i in 0..n {
            each(keys[i], values[i]);
        }
        match err.and_then(|e| e.raw_os_error()) {
            None => {}
            // Done: the last call returns ENOENT with the final elements.
            Some(libc::ENOENT) => return Ok(true),
            Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP) if first && n == 0 => {
                return Ok(false);
            }
            // A bucket holds more elements than the buffers: retry it with bigger ones.
            Some(libc::ENOSPC) if n == 0 => {
                chunk *= 2;
                keys = vec![K::default(); chunk];
                values = vec![V::default(); chunk];
                continue;
            }
            Some(code) => return Err(io::Error::from_raw_os_error(code)),
        }
        token_in = token_out;
        first = false;
    }
}
