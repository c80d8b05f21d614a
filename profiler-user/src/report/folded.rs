//! Collapsed stacks (`root;...;leaf count`, the input of flamegraph tools) and the SVG flame
//! graph drawn from them with inferno.

use super::graph::go_base;
use crate::profile::{LabelValue, Profile};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// Index of the sample value counted in collapsed stacks: the first `count` type (number of
/// samples), else the default one.
fn count_index(profile: &Profile) -> usize {
    profile
        .sample_types
        .iter()
        .position(|t| t.unit == "count")
        .unwrap_or(
            profile
                .default_sample_type
                .min(profile.sample_types.len().saturating_sub(1)),
        )
}

fn clean_frame(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == ';' || c == '\n' || c == '\r' {
                ':'
            } else {
                c
            }
        })
        .collect()
}

/// One `(stack, count)` per distinct stack, frames root first with inlined frames expanded,
/// sorted by stack. Profiles holding several processes get a `process (pid)` root frame.
pub(crate) fn collapse(profile: &Profile) -> Vec<(String, u64)> {
    let index = count_index(profile);
    let pid_of = |s: &crate::profile::Sample| {
        s.labels.iter().find_map(|l| match (&*l.key, &l.value) {
            ("pid", LabelValue::Num(n)) => Some(*n),
            _ => None,
        })
    };
    let pids: BTreeSet<i64> = profile.samples.iter().filter_map(pid_of).collect();
    let per_process = pids.len() > 1;

    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames: Vec<String> = Vec::new();
    for s in &profile.samples {
        let count = s.values.get(index).copied().unwrap_or(0);
        if count <= 0 {
            continue;
        }
        frames.clear();
        if per_process {
            let comm = s.labels.iter().find_map(|l| match (&*l.key, &l.value) {
                ("process", LabelValue::Str(c)) => Some(c.as_str()),
                _ => None,
            });
            let pid = pid_of(s)
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into());
            frames.push(clean_frame(&format!("{} ({pid})", comm.unwrap_or("?"))));
        }
        for &id in s.location_ids.iter().rev() {
            let Some(loc) = id
                .checked_sub(1)
                .and_then(|i| profile.locations.get(i as usize))
            else {
                frames.push("[unknown]".into());
                continue;
            };
            if loc.lines.is_empty() {
                let name = match profile.mapping(loc.mapping_id) {
                    Some(m) if !m.file.is_empty() => {
                        format!("[{}+{:#x}]", go_base(&m.file), loc.address)
                    }
                    _ => format!("[{:#x}]", loc.address),
                };
                frames.push(clean_frame(&name));
                continue;
            }
            for line in loc.lines.iter().rev() {
                let name = line
                    .function_id
                    .checked_sub(1)
                    .and_then(|i| profile.functions.get(i as usize))
                    .map(|f| f.name.as_str())
                    .filter(|n| !n.is_empty())
                    .unwrap_or("[unknown]");
                frames.push(clean_frame(name));
            }
        }
        if frames.is_empty() {
            frames.push("[unknown]".into());
        }
        let c = stacks.entry(frames.join(";")).or_default();
        *c = c.saturating_add(count as u64);
    }
    stacks.into_iter().collect()
}

pub(crate) fn write_folded(
    profile: &Profile,
    out: &mut dyn Write,
) -> Result<(), super::ReportError> {
    for (stack, count) in collapse(profile) {
        writeln!(out, "{stack} {count}")?;
    }
    Ok(())
}

pub(crate) fn write_flamegraph(
    profile: &Profile,
    out: &mut dyn Write,
) -> Result<(), super::ReportError> {
    let lines: Vec<String> = collapse(profile)
        .into_iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect();
    if lines.is_empty() {
        return Err(super::ReportError::NoSamples);
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = "gprof-bpf CPU flame graph".into();
    opts.count_name = "samples".into();
    opts.subtitle = super::footer(profile).and_then(|f| f.lines().next().map(str::to_string));
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)?;
    Ok(())
}
