//! The `callers` fixture's own account of its stacks: `runtime.Callers` PCs and their
//! `runtime.CallersFrames` expansion, parsed, and split into real PCs from that output alone.

use anyhow::{Context as _, Result, bail, ensure};
use std::path::Path;
use std::process::Command;

/// One `runtime.CallersFrames` frame as printed by the `callers` fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoFrame {
    /// `Frame.PC` (runtime address): the raw PC minus one, unless that was the entry.
    pub pc: u64,
    /// `Frame.Entry` (runtime address) of the physical function.
    pub entry: u64,
    /// `Frame.Func != nil`: the physical frame (not inlined).
    pub physical: bool,
    pub function: String,
    pub file: String,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Stack {
    pub tag: String,
    /// `runtime.Callers` output (runtime addresses), real and virtual PCs.
    pub raw: Vec<u64>,
    pub frames: Vec<GoFrame>,
}

/// One real PC (a return address from the stack, runtime address) and the CallersFrames
/// frames it expands to, innermost first.
#[derive(Clone, Debug)]
pub struct RealPc {
    pub raw: u64,
    pub frames: Vec<GoFrame>,
}

#[derive(Clone, Debug)]
pub struct FixtureRun {
    /// (function name, runtime entry) of `main.anchor`.
    pub anchor: (String, u64),
    /// Runtime address of the program headers (AT_PHDR).
    pub phdr: u64,
    pub stacks: Vec<Stack>,
}

/// Runs a `callers` fixture binary and parses its output.
pub fn run_callers(bin: &Path) -> Result<FixtureRun> {
    let output = Command::new(bin)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    ensure!(
        output.status.success(),
        "{} failed ({}): {}",
        bin.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse_callers(&String::from_utf8(output.stdout)?)
        .with_context(|| format!("parsing output of {}", bin.display()))
}

fn hex(s: &str) -> Result<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("bad hex {s:?}"))
}

pub fn parse_callers(text: &str) -> Result<FixtureRun> {
    let mut anchor = None;
    let mut phdr = None;
    let mut stacks = Vec::new();
    let mut cur: Option<Stack> = None;
    let mut done = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "ANCHOR" => anchor = Some((f[1].to_string(), hex(f[2])?)),
            "PHDR" => phdr = Some(hex(f[1])?),
            "STACK" => {
                cur = Some(Stack {
                    tag: f[1].to_string(),
                    raw: Vec::new(),
                    frames: Vec::new(),
                })
            }
            "PC" => cur
                .as_mut()
                .context("PC outside STACK")?
                .raw
                .push(hex(f[1])?),
            "FRAME" => {
                ensure!(f.len() == 7, "bad FRAME line {line:?}");
                cur.as_mut()
                    .context("FRAME outside STACK")?
                    .frames
                    .push(GoFrame {
                        pc: hex(f[1])?,
                        entry: hex(f[2])?,
                        physical: f[3] == "1",
                        function: f[4].to_string(),
                        file: f[5].to_string(),
                        line: f[6].parse()?,
                    })
            }
            "END" => stacks.push(cur.take().context("END outside STACK")?),
            "DONE" => done = true,
            _ => bail!("unexpected line {line:?}"),
        }
    }
    ensure!(done, "fixture output is truncated (no DONE line)");
    Ok(FixtureRun {
        anchor: anchor.context("no ANCHOR line")?,
        phdr: phdr.context("no PHDR line")?,
        stacks,
    })
}

impl Stack {
    /// Splits the stack into its real PCs, dropping the virtual PCs that `runtime.Callers`
    /// inserts for the outer frames of an inlined call.
    ///
    /// Both Go 1.19 and 1.21+ `CallersFrames` turn each `Callers` PC into exactly one frame,
    /// with `Frame.PC = raw - 1` (or `raw` when that is the entry). The frames of one real PC
    /// are a run of inlined frames (`Func == nil`) of the same physical function (same
    /// `Entry`), closed by the physical frame, unless the physical frame is a wrapper that
    /// the runtime elided (then the run ends at a change of `Entry`). The fixture has no
    /// recursion through inlined frames, so a run never spans two activations.
    /// Derived only from the runtime's output, independent of the reader under test.
    pub fn real_pcs(&self) -> Result<Vec<RealPc>> {
        ensure!(
            self.raw.len() == self.frames.len(),
            "stack {}: {} Callers PCs but {} CallersFrames frames",
            self.tag,
            self.raw.len(),
            self.frames.len()
        );
        for (raw, fr) in self.raw.iter().zip(&self.frames) {
            ensure!(
                fr.pc + 1 == *raw || (fr.pc == *raw && fr.pc == fr.entry),
                "stack {}: frame PC {:#x} does not belong to Callers PC {raw:#x}",
                self.tag,
                fr.pc
            );
        }
        let mut out: Vec<RealPc> = Vec::new();
        let mut i = 0;
        while i < self.frames.len() {
            let start = i;
            while !self.frames[i].physical
                && i + 1 < self.frames.len()
                && self.frames[i + 1].entry == self.frames[i].entry
            {
                i += 1;
            }
            out.push(RealPc {
                raw: self.raw[start],
                frames: self.frames[start..=i].to_vec(),
            });
            i += 1;
        }
        Ok(out)
    }
}
