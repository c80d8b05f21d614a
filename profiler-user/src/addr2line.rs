//! `gprof-bpf addr2line`: symbolize addresses of a Go binary from its pclntab, like
//! `go tool addr2line`, optionally with inlined frames.
//!
//! Throughput: the whole input is read at once, split into chunks of lines at newlines, and
//! the chunks are symbolized by one thread per CPU into their own output buffers (the decoded
//! tables are shared through the one [`GoTable`]); this thread writes the buffers in input
//! order with one large write each. Addresses are parsed without allocation and the output is
//! built with `extend_from_slice`, not `fmt`.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::symbolize::gopclntab::{Frame, GoTable, PcKind};

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

type Result<T, E = Addr2lineError> = std::result::Result<T, E>;

/// What `go tool addr2line` prints for an address it cannot symbolize.
const UNKNOWN: &[u8] = b"?\n?:0\n";

/// Lines per chunk of work: large enough that a chunk's output is one large write and the
/// per-chunk overhead is nothing, small enough that both CPUs get work and the writer can
/// start early.
const CHUNK_LINES: usize = 4096;

/// Reads one address per line (hex, `0x` optional) from `input` and looks each up exactly as
/// given (no return-address adjustment).
///
/// Without `inlines` it prints what `go tool addr2line` prints: the physical function name and
/// the innermost `file:line`; for an address in no Go function, or a line that is no address,
/// `?` and `?:0` as Go's tool does. With `inlines` it prints every frame, innermost first
/// (wrapper functions included), as a function line and a `file:line` line, then an empty line.
///
/// Input that is not UTF-8 is an error at that line, after the lines before it are printed.
pub fn run(
    binary: &[u8],
    mut input: impl BufRead,
    mut out: impl Write,
    inlines: bool,
) -> Result<()> {
    let table = GoTable::parse(binary).map_err(Addr2lineError::Pclntab)?;
    let mut text = Vec::new();
    input
        .read_to_end(&mut text)
        .map_err(Addr2lineError::Input)?;
    let chunks = split_chunks(&text, CHUNK_LINES);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks.len());
    if threads <= 1 {
        let mut buf = Vec::new();
        for &(a, b) in &chunks {
            let res = symbolize_chunk(&table, &text[a..b], inlines, &mut buf);
            out.write_all(&buf)?;
            buf.clear();
            res?;
        }
        out.flush()?;
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    // Written buffers go back to the workers: fresh megabyte buffers would each be mapped
    // and page-faulted anew (a measurable part of the run for ~50 MB of output).
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let free_rx = std::sync::Mutex::new(free_rx);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = mpsc::channel::<(usize, Vec<u8>, Result<()>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, table, text, chunks, free_rx) = (&next, &table, &text, &chunks, &free_rx);
            s.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(a, b)) = chunks.get(k) else { break };
                    let recycled = free_rx.lock().ok().and_then(|r| r.try_recv().ok());
                    let mut buf = recycled.unwrap_or_default();
                    buf.clear();
                    // About 24 bytes of output per input byte (long file paths).
                    buf.reserve((b - a) * 24);
                    let res = symbolize_chunk(table, &text[a..b], inlines, &mut buf);
                    if tx.send((k, buf, res)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Chunks finish out of order: keep them until their turn.
        let mut pending: Vec<Option<(Vec<u8>, Result<()>)>> =
            (0..chunks.len()).map(|_| None).collect();
        let mut turn = 0;
        let result = (|| -> Result<()> {
            for (k, buf, res) in rx.iter() {
                pending[k] = Some((buf, res));
                while let Some((buf, res)) = pending.get_mut(turn).and_then(Option::take) {
                    out.write_all(&buf)?;
                    res?;
                    // The workers may all be done: then the buffer is dropped here.
                    let _ = free_tx.send(buf);
                    turn += 1;
                }
            }
            out.flush()?;
            Ok(())
        })();
        // On an error, let the workers stop after their current chunk.
        next.store(chunks.len(), Ordering::Relaxed);
        result
    })
}

/// `[start, end)` byte ranges of `text`, each of up to `lines` whole lines (the last may lack
/// its newline).
fn split_chunks(text: &[u8], lines: usize) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut n = 0;
    for (i, &c) in text.iter().enumerate() {
        if c == b'\n' {
            n += 1;
            if n == lines {
                chunks.push((start, i + 1));
                (start, n) = (i + 1, 0);
            }
        }
    }
    if start < text.len() {
        chunks.push((start, text.len()));
    }
    chunks
}

/// Symbolizes the lines of `text` into `buf`; stops at a line that is not UTF-8 (an error,
/// as `BufRead::lines` gives it), with the lines before it printed.
fn symbolize_chunk<D: AsRef<[u8]>>(
    table: &GoTable<D>,
    text: &[u8],
    inlines: bool,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    // `BufRead::lines`: split at '\n', drop one '\r' before it; no empty last line.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    for raw in body.split(|&c| c == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| {
            Addr2lineError::Input(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        let pc = parse_pc(line);
        if inlines {
            frames.clear();
            if let Some(pc) = pc
                // An address looked up on its own has no caller to elide a wrapper for: keep
                // wrapper frames (the runtime elides them only inside a traceback).
                && table
                    .frames_with_callee(pc, PcKind::Leaf, Some("runtime.gopanic"), &mut frames)
                    .is_err()
            {
                // A corrupt entry for one address must not stop the others: print it as
                // unknown.
                frames.clear();
            }
            if frames.is_empty() {
                buf.extend_from_slice(UNKNOWN);
            }
            for f in &frames {
                push_frame(buf, &f.function, f.file, i64::from(f.line));
            }
            buf.push(b'\n');
        } else {
            match pc.and_then(|pc| table.pc_to_line(pc).ok().flatten()) {
                Some((name, file, line)) => push_frame(buf, name, file, i64::from(line)),
                None => buf.extend_from_slice(UNKNOWN),
            }
        }
    }
    Ok(())
}

/// The address on a line as the tool reads it: trimmed, `0x`/`0X` optional, hex.
#[inline]
fn parse_pc(line: &str) -> Option<u64> {
    let text = line.trim();
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let b = hex.as_bytes();
    if b.is_empty() || b.len() > 16 {
        // Empty, or long (leading zeros): the library's rules decide.
        return u64::from_str_radix(hex, 16).ok();
    }
    let mut v = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            // A sign or anything else: the library's rules decide.
            _ => return u64::from_str_radix(hex, 16).ok(),
        };
        v = v << 4 | u64::from(d);
    }
    Some(v)
}

/// `"{function}\n{file}:{line}\n"`.
#[inline]
fn push_frame(buf: &mut Vec<u8>, function: &str, file: &str, line: i64) {
    buf.reserve(function.len() + file.len() + 24);
    buf.extend_from_slice(function.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(file.as_bytes());
    buf.push(b':');
    push_int(buf, line);
    buf.push(b'\n');
}

/// Decimal `v`, as `Display` prints it.
#[inline]
fn push_int(buf: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if v < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pc_matches_from_str_radix() {
        for s in [
            "0x401000",
            "401000",
            "0X401000",
            " 0x1f \t",
            "+1f",
            "0x+1f",
            "",
            "0x",
            "zz",
            "0xffffffffffffffff",
            "0x10000000000000000",
            "0x00000000000000000001",
            "\u{b}0x10\u{b}",
            "0x-1",
        ] {
            let t = s.trim();
            let h = t
                .strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(t);
            assert_eq!(parse_pc(s), u64::from_str_radix(h, 16).ok(), "{s:?}");
        }
    }

    #[test]
    fn push_int_matches_display() {
        for v in [
            0i64,
            1,
            -1,
            9,
            10,
            4711,
            -7,
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn chunks_cover_the_text_at_line_boundaries() {
        for text in [
            &b""[..],
            b"a",
            b"a\n",
            b"a\nb",
            b"a\nb\n",
            b"\n\n\n",
            b"a\r\nb\r\n",
        ] {
            for n in 1..4 {
                let c = split_chunks(text, n);
                let mut at = 0;
                for &(a, b) in &c {
                    assert_eq!(a, at);
                    assert!(b > a);
                    at = b;
                }
                assert_eq!(at, text.len());
            }
        }
    }
}
