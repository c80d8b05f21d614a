//! The flat table of `go tool pprof -top` (pprof's `TextItems` / `printText`), with its
//! header labels (`ProfileLabels`, `reportLabels`) and node trimming (`newTrimmedGraph`).

use super::Ctx;
use super::graph::{self, Granularity, GraphOptions, NodeInfo};
use super::units::{label, percentage, scale};
use crate::profile::Profile;
use std::collections::HashSet;
use std::time::UNIX_EPOCH;

/// pprof's defaults for `-nodefraction` and `-edgefraction`.
const NODE_FRACTION: f64 = 0.005;
const EDGE_FRACTION: f64 = 0.001;

pub(crate) struct TopRow {
    pub name: String,
    pub flat: i64,
    pub line: String,
}

pub(crate) struct Top {
    /// `Showing nodes ...` and, when nodes were removed, `Dropped ...` / `Showing top ...`.
    pub report_labels: Vec<String>,
    /// The column header line.
    pub header: String,
    pub rows: Vec<TopRow>,
    /// Unit every value of the table is printed in.
    pub unit: String,
}

/// `-top` with `-nodecount=node_count` (0: all nodes above the node fraction).
/// `noinlines`: `-noinlines`, inlined functions are attributed to their callers.
pub(crate) fn top(profile: &Profile, ctx: &Ctx, node_count: usize, noinlines: bool) -> Top {
    let file_name = |f: &str| f.to_string();
    let build = |kept: Option<&HashSet<NodeInfo>>| {
        graph::build(
            profile,
            &GraphOptions {
                granularity: Granularity::Functions,
                noinlines,
                value_index: ctx.index,
                file_name: &file_name,
                kept,
            },
        )
    };
    let mut g = build(None);
    let total_value = g.nodes.iter().fold(0i64, |a, n| a.wrapping_add(n.flat));
    let node_cutoff = ((total_value as f64 * NODE_FRACTION) as i64).wrapping_abs();
    let edge_cutoff = ((total_value as f64 * EDGE_FRACTION) as i64).wrapping_abs();
    let mut dropped_nodes = 0;
    if node_cutoff > 0 {
        let kept: HashSet<NodeInfo> = g
            .nodes
            .iter()
            .filter(|n| n.cum.wrapping_abs() >= node_cutoff)
            .map(|n| n.info.clone())
            .collect();
        if kept.len() != g.nodes.len() {
            dropped_nodes = g.nodes.len() - kept.len();
            g = build(Some(&kept));
        }
    }
    let orig_count = g.nodes.len();
    g.sort_flat_name();
    if node_count > 0 && node_count < g.nodes.len() {
        let kept: HashSet<NodeInfo> = g.nodes[..node_count]
            .iter()
            .map(|n| n.info.clone())
            .collect();
        g = build(Some(&kept));
        g.sort_flat_name();
    }
    g.trim_edges(edge_cutoff);

    // selectOutputUnit.
    let mut min_value = 0i64;
    for n in &g.nodes {
        let mut v = n.flat.wrapping_abs();
        if v == 0 {
            v = n.cum.wrapping_abs();
        }
        if v > 0 && (min_value == 0 || v < min_value) {
            min_value = v;
        }
    }
    let unit = if g.nodes.is_empty() {
        "minimum".to_string()
    } else {
        let max_value = ctx.total;
        if min_value == 0 {
            min_value = max_value;
        }
        let (_, min_unit) = scale(min_value, &ctx.unit, "minimum");
        let (_, max_unit) = scale(max_value, &ctx.unit, "minimum");
        let mut unit = min_unit.clone();
        if min_unit != max_unit && min_value.saturating_mul(100) < max_value {
            unit = scale(min_value.saturating_mul(100), &ctx.unit, "minimum").1;
        }
        if unit.is_empty() {
            ctx.unit.clone()
        } else {
            unit
        }
    };
    let fmt = |v: i64| ctx.format(v, &unit);

    let shown = g.nodes.iter().fold(0i64, |a, n| a.wrapping_add(n.flat));
    let mut report_labels = vec![format!(
        "Showing nodes accounting for {}, {} of {} total",
        fmt(shown),
        percentage(shown, ctx.total).trim(),
        fmt(ctx.total)
    )];
    if ctx.total != 0 {
        if dropped_nodes > 0 {
            let s = if dropped_nodes > 1 { "s" } else { "" };
            let cut = ((ctx.total as f64 * NODE_FRACTION) as i64).wrapping_abs();
            report_labels.push(format!(
                "Dropped {dropped_nodes} node{s} (cum <= {})",
                fmt(cut)
            ));
        }
        if !g.nodes.is_empty() && g.nodes.len() < orig_count {
            report_labels.push(format!(
                "Showing top {} nodes out of {orig_count}",
                g.nodes.len()
            ));
        }
    }

    let header = format!(
        "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
        "flat", "flat", "sum", "cum", "cum"
    );
    let mut rows = Vec::with_capacity(g.nodes.len());
    let mut flat_sum = 0i64;
    for (i, n) in g.nodes.iter().enumerate() {
        flat_sum = flat_sum.wrapping_add(n.flat);
        let name = n.info.printable_name();
        let line = format!(
            "{:>10} {} {} {:>10} {}  {}{}",
            fmt(n.flat),
            percentage(n.flat, ctx.total),
            percentage(flat_sum, ctx.total),
            fmt(n.cum),
            percentage(n.cum, ctx.total),
            name,
            g.inline_label(i)
        );
        rows.push(TopRow {
            name: n.info.name.clone(),
            flat: n.flat,
            line,
        });
    }
    Top {
        report_labels,
        header,
        rows,
        unit,
    }
}

/// pprof's `ProfileLabels`: File, Build ID, comments, Type, Time, Duration.
pub(crate) fn profile_labels(profile: &Profile, ctx: &Ctx, unit: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = profile.mappings.first() {
        if !m.file.is_empty() {
            out.push(format!("File: {}", graph::go_base(&m.file)));
        }
        if !m.build_id.is_empty() {
            out.push(format!("Build ID: {}", m.build_id));
        }
    }
    out.extend(
        profile
            .comments
            .iter()
            .filter(|c| !c.starts_with('#'))
            .cloned(),
    );
    if !ctx.sample_type.is_empty() {
        out.push(format!("Type: {}", ctx.sample_type));
    }
    if profile.start_time != UNIX_EPOCH {
        out.push(format!("Time: {}", format_time(profile.start_time)));
    }
    let duration = i64::try_from(profile.duration.as_nanos()).unwrap_or(i64::MAX);
    if duration != 0 {
        let (total_nanos, total_unit) = scale(ctx.total, &ctx.unit, "nanoseconds");
        let ratio = if total_unit == "ns" && total_nanos != 0.0 {
            format!("({})", percentage(total_nanos as i64, duration))
        } else {
            String::new()
        };
        out.push(format!(
            "Duration: {}, Total samples = {} {ratio}",
            label(duration, "nanoseconds"),
            ctx.format(ctx.total, unit)
        ));
    }
    out
}

/// Local time as Go's layout `2006-01-02 15:04:05 MST` (what current pprof prints).
pub(crate) fn format_time(t: std::time::SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let tt = secs as libc::time_t;
    // SAFETY: `tm` is plain data; localtime_r only writes it and reads `tt`; tm_zone, when set,
    // points to static timezone strings owned by libc.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&tt, &mut tm).is_null() {
            return format!("{secs}");
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}",
            tm.tm_year as i64 + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            zone
        )
    }
}
