//! Completes the user stacks the kernel walked by frame pointers.
//!
//! The frame-pointer walk starts at the interrupted BP. When the interrupted Go function has
//! not (yet, or any more) saved BP and made it point at its own frame - a frameless leaf, a
//! prologue before `MOVQ SP, BP`, an epilogue after `POPQ BP` - BP is still the caller's, so
//! the walk's first return address is the caller's caller and the caller is lost. The pcsp
//! table says where the return address is: at `[SP + d]` (amd64), `d` being the SP delta at
//! the sampled PC. The kernel sends `[SP]`, `[SP+8]` and whether BP == SP, which covers `d` = 0
//! and 8, the only deltas at which BP is not yet (or no longer) this frame's. So that those
//! words do not split the in-kernel aggregates, [`frame0_rule`] tells the kernel per IP which
//! of them the repair will read.

use profiler_ebpf::Frame0Rule;

use crate::process::ProcessSnapshot;
use crate::symbolize::gopclntab::PcKind;

/// A frame to symbolize: a runtime address and how to look it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserFrame {
    pub pc: u64,
    pub kind: PcKind,
    /// The frame below (the callee) is a panic function: a wrapper frame here is kept, as the
    /// runtime's traceback keeps it.
    pub callee_panics: bool,
}

/// What the repair did, for tests and statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Frames inserted from the pcsp rule.
    pub inserted: u64,
    /// Stacks cut at a TopFrame function (goexit, itself left out as runtime/pprof does; mstart).
    pub stopped_at_top: u64,
}

/// Functions the runtime calls on behalf of the interrupted code: the frame above them is the
/// faulting/interrupted instruction itself, not a return address.
fn is_injected_call(name: &str) -> bool {
    matches!(
        name,
        "runtime.sigpanic" | "runtime.asyncPreempt" | "runtime.debugCallV2"
    )
}

/// Turns the kernel's frames (`frames[0]` = IP, then return addresses) into frames to
/// symbolize, repairing frame 0's caller and stopping at Go's top frames.
pub fn complete_stack(
    snapshot: Option<&ProcessSnapshot>,
    frames: &[u64],
    sp_words: [u64; 2],
    bp_is_sp: bool,
    stats: &mut RepairStats,
) -> Vec<UserFrame> {
    let mut out = Vec::with_capacity(frames.len() + 1);
    let Some((&ip, callers)) = frames.split_first() else {
        return out;
    };
    out.push(UserFrame {
        pc: ip,
        kind: PcKind::Leaf,
        callee_panics: false,
    });
    if let Some(ret) = snapshot.and_then(|s| missing_caller(s, ip, sp_words, bp_is_sp)) {
        out.push(UserFrame {
            pc: ret,
            kind: PcKind::Return,
            callee_panics: false,
        });
        stats.inserted += 1;
    }
    out.extend(callers.iter().map(|&pc| UserFrame {
        pc,
        kind: PcKind::Return,
        callee_panics: false,
    }));

    let Some(snapshot) = snapshot else {
        return out;
    };
    // Second pass: frames above injected calls, and the TopFrame stop.
    let mut prev_injected = false;
    let mut prev_panics = false;
    for i in 0..out.len() {
        if prev_injected {
            out[i].kind = PcKind::AfterInjectedCall;
        }
        out[i].callee_panics = prev_panics;
        prev_injected = false;
        prev_panics = false;
        let Some(r) = snapshot.resolve(out[i].pc) else {
            continue;
        };
        let Some(go) = r.object.go.as_ref() else {
            continue;
        };
        let lookup = match out[i].kind {
            PcKind::Return if r.link_address > 0 => r.link_address - 1,
            _ => r.link_address,
        };
        if let Ok(Some(f)) = go.func_at(lookup) {
            if f.flags.top_frame() {
                // runtime/pprof leaves out runtime.goexit, the return address at the bottom of
                // every goroutine (runtime/pprof/proto.go, allFrames); mstart and the other top
                // frames stay, as there.
                let root = f.name == "runtime.goexit" && i > 0;
                out.truncate(if root { i } else { i + 1 });
                stats.stopped_at_top += 1;
                break;
            }
            prev_injected = is_injected_call(f.name);
            prev_panics = matches!(
                f.name,
                "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
            );
        }
    }
    out
}

/// The return address of the interrupted Go function when the frame-pointer walk cannot see
/// it (see the module comment), or None.
fn missing_caller(
    snapshot: &ProcessSnapshot,
    ip: u64,
    sp_words: [u64; 2],
    bp_is_sp: bool,
) -> Option<u64> {
    let r = snapshot.resolve(ip)?;
    let go = r.object.go.as_ref()?;
    let d = go.sp_delta(r.link_address).ok()??;
    // BP points at this frame's saved-BP slot exactly when BP == SP + d - 8; only d = 8 can
    // have it here (larger deltas never need the repair).
    if d == 8 && bp_is_sp {
        return None;
    }
    let ret = match d {
        0 => sp_words[0],
        8 => sp_words[1],
        _ => return None,
    };
    (ret != 0).then_some(ret)
}

/// What the kernel must keep of the words at SP for samples at `ip`: the one the repair reads
/// at this PC's SP delta, or none. None when the IP is not mapped yet (the kernel then keeps
/// both words, as for every IP without a rule).
pub fn frame0_rule(snapshot: &ProcessSnapshot, ip: u64) -> Option<Frame0Rule> {
    let r = snapshot.resolve(ip)?;
    let Some(go) = r.object.go.as_ref() else {
        return Some(Frame0Rule::Neither);
    };
    Some(match go.sp_delta(r.link_address) {
        Ok(Some(0)) => Frame0Rule::Word0,
        Ok(Some(8)) => Frame0Rule::Word1,
        _ => Frame0Rule::Neither,
    })
}
