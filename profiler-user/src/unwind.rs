//! Completes the user stacks the kernel walked by frame pointers.
//!
//! The frame-pointer walk starts at the interrupted BP. When the interrupted Go function has
//! not (yet, or any more) saved BP and made it point at its own frame - a frameless leaf, a
//! prologue before `MOVQ SP, BP`, an epilogue after `POPQ BP` - BP is still the caller's, so
//! the walk's first return address is the caller's caller and the caller is lost. The pcsp
//! table says where the return address is: at `[SP + d]` (amd64), `d` being the SP delta at
//! the sampled PC. The kernel sends `[SP]`, `[SP+8]` and `BP - SP`, which covers `d` = 0 and 8,
//! the only deltas at which BP is not yet (or no longer) this frame's.

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
    /// Stacks cut at a TopFrame function (goexit, mstart).
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
    bp_minus_sp: u64,
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
    if let Some(ret) = snapshot.and_then(|s| missing_caller(s, ip, sp_words, bp_minus_sp)) {
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
                out.truncate(i + 1);
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
    bp_minus_sp: u64,
) -> Option<u64> {
    let r = snapshot.resolve(ip)?;
    let go = r.object.go.as_ref()?;
    let d = go.sp_delta(r.link_address).ok()??;
    // BP points at this frame's saved-BP slot exactly when BP == SP + d - 8.
    let frame_established = d >= 8 && bp_minus_sp as i64 == i64::from(d) - 8;
    if frame_established {
        return None;
    }
    let ret = match d {
        0 => sp_words[0],
        8 => sp_words[1],
        _ => return None,
    };
    (ret != 0).then_some(ret)
}
