//! `gprof-bpf addr2line`: symbolize addresses of a Go binary from its pclntab, like
//! `go tool addr2line`, optionally with inlined frames.

use std::io::{BufRead, Write};

use crate::symbolize::gopclntab::{GoTable, PcKind};

/// Why `addr2line` stopped.
#[derive(Debug, thiserror::Error)]
pub enum Addr2lineError {
    #[error("reading the Go pclntab")]
    Pclntab(#[source] crate::symbolize::gopclntab::Error),
    #[error("reading addresses")]
    Input(#[source] std::io::Error),
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

/// What `go tool addr2line` prints for an address it cannot symbolize.
const UNKNOWN: &str = "?\n?:0";

/// Reads one address per line (hex, `0x` optional) from `input` and looks each up exactly as
/// given (no return-address adjustment).
///
/// Without `inlines` it prints what `go tool addr2line` prints: the physical function name and
/// the innermost `file:line`; for an address in no Go function, or a line that is no address,
/// `?` and `?:0` as Go's tool does. With `inlines` it prints every frame, innermost first
/// (wrapper functions included), as a function line and a `file:line` line, then an empty line.
pub fn run(
    binary: &[u8],
    input: impl BufRead,
    mut out: impl Write,
    inlines: bool,
) -> Result<(), Addr2lineError> {
    let table = GoTable::parse(binary).map_err(Addr2lineError::Pclntab)?;
    let mut frames = Vec::new();
    for line in input.lines() {
        let line = line.map_err(Addr2lineError::Input)?;
        let text = line.trim();
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let pc = u64::from_str_radix(hex, 16).ok();
        // A corrupt entry for one address must not stop the others: print it as unknown.
        if inlines {
            frames.clear();
            if let Some(pc) = pc
                // An address looked up on its own has no caller to elide a wrapper for: keep
                // wrapper frames (the runtime elides them only inside a traceback).
                && table
                    .frames_with_callee(pc, PcKind::Leaf, Some("runtime.gopanic"), &mut frames)
                    .is_err()
            {
                frames.clear();
            }
            if frames.is_empty() {
                writeln!(out, "{UNKNOWN}")?;
            }
            for f in &frames {
                writeln!(out, "{}\n{}:{}", f.function, f.file, f.line)?;
            }
            writeln!(out)?;
        } else {
            match pc.and_then(|pc| table.pc_to_line(pc).ok().flatten()) {
                Some((name, file, line)) => writeln!(out, "{name}\n{file}:{line}")?,
                None => writeln!(out, "{UNKNOWN}")?,
            }
        }
    }
    out.flush()?;
    Ok(())
}
