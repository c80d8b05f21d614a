//! Text of the view: the header, the column layout for a given width, the rows, and the plain
//! block printed when stdout is not a terminal. Pure functions of the [`Model`] and a
//! [`Status`]; `draw` puts the same lines on a ratatui frame.

use std::time::Duration;

use ratatui::Frame;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::model::{FuncKey, Mode, Model, Row, SortBy};

/// What the header says besides the model: the target and what profiling costs.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub pid: u32,
    /// /proc/PID/exe when it was read.
    pub exe: String,
    /// From the executable's build info.
    pub go_version: Option<String>,
    pub frequency_hz: u64,
    pub interval: Duration,
    /// Samples lost since the start (count map full, pipeline behind).
    pub lost: u64,
    /// The profiler's own CPU use over the last refresh, percent of one CPU.
    pub cpu_pct: f64,
    pub by_tag: Option<String>,
    /// Also following the target's children.
    pub subprocesses: bool,
    /// The last warning of the library, shown until the next one.
    pub message: Option<String>,
}

/// `1.23s`, `12.3s`, `2m03s`, `1h02m`.
pub fn fmt_time(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    if secs < 9.995 {
        format!("{secs:.2}s")
    } else if secs < 99.95 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// At most `width` characters of `s`, cut at the end.
pub fn clip(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

/// A function as `name (file:line)` in at most `width` characters: the whole of it when it
/// fits, else without the location, else the end of the name (the method and type, which say
/// more than the package path) after `..`.
pub fn function_label(key: &FuncKey, width: usize) -> String {
    let file = key.file.rsplit('/').next().unwrap_or(&key.file);
    let full = match (file.is_empty(), key.line) {
        (true, _) => key.name.clone(),
        (false, 0) => format!("{} ({file})", key.name),
        (false, line) => format!("{} ({file}:{line})", key.name),
    };
    if full.chars().count() <= width {
        return full;
    }
    let n = key.name.chars().count();
    if n <= width {
        return key.name.clone();
    }
    if width <= 2 {
        return clip(&key.name, width);
    }
    let tail: String = key.name.chars().skip(n - (width - 2)).collect();
    format!("..{tail}")
}

/// Which columns a width has room for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    pub total_pct: bool,
    pub times: bool,
    /// Width of the tag column (0: none).
    pub tag: usize,
    pub width: usize,
}

const OWN_W: usize = 6;
const TOTAL_W: usize = 7;
const OWN_TIME_W: usize = 9;
const TOTAL_TIME_W: usize = 10;
const TAG_MAX: usize = 24;

impl Columns {
    pub fn for_width(width: usize, tag: Option<(&str, &[Row])>) -> Self {
        let tag = match tag {
            Some((key, rows)) => rows
                .iter()
                .filter_map(|r| r.key.tag.as_ref())
                .map(|t| t.chars().count())
                .chain([key.chars().count()])
                .max()
                .unwrap_or(0)
                .min(TAG_MAX),
            None => 0,
        };
        let numbers = OWN_W + TOTAL_W + OWN_TIME_W + TOTAL_TIME_W;
        // Keep at least 20 columns for the function when dropping columns can give them.
        let times = width >= numbers + 20 + if tag > 0 { tag + 1 } else { 0 };
        let total_pct = times || width >= OWN_W + TOTAL_W + 20;
        let tag = if times || width >= OWN_W + TOTAL_W + tag + 21 {
            tag
        } else {
            0
        };
        Columns {
            total_pct,
            times,
            tag,
            width,
        }
    }

    fn function_width(&self) -> usize {
        let mut used = OWN_W + 1;
        if self.total_pct {
            used += TOTAL_W + 1;
        }
        if self.times {
            used += OWN_TIME_W + TOTAL_TIME_W + 2;
        }
        if self.tag > 0 {
            used += self.tag + 1;
        }
        self.width.saturating_sub(used)
    }
}

/// The column titles; the sorted one is marked with `*`.
pub fn table_header(model: &Model, cols: &Columns, tag_key: Option<&str>) -> String {
    let title = |name: &str, by: SortBy, w: usize| {
        let t = if model.sort == by {
            format!("*{name}")
        } else {
            name.to_string()
        };
        format!("{t:>w$}")
    };
    let mut s = title("Own%", SortBy::Own, OWN_W);
    if cols.total_pct {
        s.push(' ');
        s.push_str(&title("Total%", SortBy::Total, TOTAL_W));
    }
    if cols.times {
        s.push(' ');
        s.push_str(&title("OwnTime", SortBy::OwnTime, OWN_TIME_W));
        s.push(' ');
        s.push_str(&title("TotalTime", SortBy::TotalTime, TOTAL_TIME_W));
    }
    if cols.tag > 0 {
        let key = clip(tag_key.unwrap_or("tag"), cols.tag);
        s.push_str(&format!(" {key:<w$}", w = cols.tag));
    }
    s.push_str(" Function (file:line)");
    clip(&s, cols.width)
}

pub fn format_row(row: &Row, cols: &Columns) -> String {
    let mut s = format!("{:>w$.1}", row.own_pct, w = OWN_W);
    if cols.total_pct {
        s.push_str(&format!(" {:>w$.1}", row.total_pct, w = TOTAL_W));
    }
    if cols.times {
        s.push_str(&format!(
            " {:>w1$} {:>w2$}",
            fmt_time(row.own_time),
            fmt_time(row.total_time),
            w1 = OWN_TIME_W,
            w2 = TOTAL_TIME_W
        ));
    }
    if cols.tag > 0 {
        let tag = row.key.tag.as_deref().unwrap_or("-");
        let tag = if tag.chars().count() > cols.tag {
            format!("{}~", clip(tag, cols.tag - 1))
        } else {
            tag.to_string()
        };
        s.push_str(&format!(" {tag:<w$}", w = cols.tag));
    }
    s.push(' ');
    s.push_str(&function_label(&row.key, cols.function_width()));
    clip(&s, cols.width)
}

/// The header lines (target; rates and state; keys), each at most `width` characters.
pub fn header_lines(model: &Model, status: &Status, width: usize, keys: bool) -> Vec<String> {
    let mut target = format!("gprof-bpf top  pid {}", status.pid);
    if status.subprocesses {
        target.push_str(" (+children)");
    }
    if !status.exe.is_empty() {
        target.push_str(&format!("  {}", status.exe));
    }
    target.push_str(&format!(
        "  {}  {} Hz  refresh {}",
        status.go_version.as_deref().unwrap_or("Go version unknown"),
        status.frequency_hz,
        humantime::format_duration(status.interval)
    ));
    let mut state = format!(
        "Samples/s {:.1}  lost {}  profiler CPU {:.1}%  samples {} over {}  view {}  sort {}",
        model.rate(),
        status.lost,
        status.cpu_pct,
        model.samples,
        fmt_time(model.covered.as_secs_f64()),
        match model.mode {
            Mode::Recent => "recent",
            Mode::Cumulative => "cumulative",
        },
        model.sort.name()
    );
    if !model.show_inlined {
        state.push_str("  no inlines");
    }
    if let Some(tag) = &status.by_tag {
        state.push_str(&format!("  by {tag}"));
    }
    if model.paused {
        state.push_str("  [PAUSED]");
    }
    let mut lines = vec![clip(&target, width), clip(&state, width)];
    if keys {
        lines.push(clip(
            &format!(
                "Keys: 1/o own%  2/t total%  3 own time  4 total time  i inlined ({})  \
                 c recent/cumulative  p pause  r reset  q quit",
                if model.show_inlined { "on" } else { "off" }
            ),
            width,
        ));
    }
    lines
}

/// One block of plain text (stdout is not a terminal): the header and the first `rows` rows.
pub fn plain_block(model: &Model, status: &Status, width: usize, rows: usize) -> String {
    let all = model.rows();
    let cols = Columns::for_width(width, status.by_tag.as_deref().map(|k| (k, &all[..])));
    let mut out = header_lines(model, status, width, false).join("\n");
    out.push('\n');
    out.push_str(&table_header(model, &cols, status.by_tag.as_deref()));
    out.push('\n');
    for r in all.iter().take(rows) {
        out.push_str(&format_row(r, &cols));
        out.push('\n');
    }
    out
}

/// Draws the view on the whole frame (any size: what does not fit is left out).
pub fn draw(frame: &mut Frame, model: &Model, status: &Status) {
    let area = frame.area();
    let (width, height) = (area.width as usize, area.height as usize);
    if width == 0 || height == 0 {
        return;
    }
    let mut lines: Vec<Line> = header_lines(model, status, width, height >= 8)
        .into_iter()
        .map(Line::raw)
        .collect();
    lines[0] = lines[0]
        .clone()
        .style(Style::new().add_modifier(Modifier::BOLD));
    if height >= 8 {
        let msg = status.message.as_deref().unwrap_or("");
        lines.push(Line::raw(clip(msg, width)));
    }
    let rows = model.rows();
    let cols = Columns::for_width(width, status.by_tag.as_deref().map(|k| (k, &rows[..])));
    let head = format!(
        "{:<width$}",
        table_header(model, &cols, status.by_tag.as_deref())
    );
    lines.push(Line::styled(
        head,
        Style::new().add_modifier(Modifier::REVERSED),
    ));
    let room = height.saturating_sub(lines.len());
    for r in rows.iter().take(room) {
        lines.push(Line::raw(format_row(r, &cols)));
    }
    lines.truncate(height);
    frame.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> FuncKey {
        FuncKey {
            tag: None,
            name: name.into(),
            file: "/home/me/src/server/handler.go".into(),
            line: 42,
        }
    }

    fn row(name: &str) -> Row {
        Row {
            key: key(name),
            own_pct: 66.66,
            total_pct: 100.0,
            own_time: 12.345,
            total_time: 3725.0,
        }
    }

    #[test]
    fn times() {
        assert_eq!(fmt_time(0.0), "0.00s");
        assert_eq!(fmt_time(1.234), "1.23s");
        assert_eq!(fmt_time(12.34), "12.3s");
        assert_eq!(fmt_time(123.0), "2m03s");
        assert_eq!(fmt_time(3725.0), "1h02m");
        assert_eq!(fmt_time(f64::NAN), "0.00s");
        assert_eq!(fmt_time(-3.0), "0.00s");
    }

    #[test]
    fn function_labels_shrink_sensibly() {
        let k = key("example.com/server.(*Handler).ServeHTTP");
        assert_eq!(
            function_label(&k, 80),
            "example.com/server.(*Handler).ServeHTTP (handler.go:42)"
        );
        assert_eq!(
            function_label(&k, 45),
            "example.com/server.(*Handler).ServeHTTP"
        );
        assert_eq!(function_label(&k, 20), "..Handler).ServeHTTP");
        assert_eq!(function_label(&k, 2), "ex");
        assert_eq!(function_label(&k, 0), "");
        let mut k = key("main.f");
        k.line = 0;
        assert_eq!(function_label(&k, 80), "main.f (handler.go)");
        k.file.clear();
        assert_eq!(function_label(&k, 80), "main.f");
    }

    #[test]
    fn every_width_fits() {
        let rows = [row("example.com/server.(*Handler).ServeHTTP")];
        let mut model = Model::default();
        for sort in [
            SortBy::Own,
            SortBy::Total,
            SortBy::OwnTime,
            SortBy::TotalTime,
        ] {
            model.sort = sort;
            for width in 0..200 {
                for tag in [None, Some(("job", &rows[..]))] {
                    let cols = Columns::for_width(width, tag);
                    let h = table_header(&model, &cols, tag.map(|t| t.0));
                    assert!(h.chars().count() <= width, "{width}: {h:?}");
                    let r = format_row(&rows[0], &cols);
                    assert!(r.chars().count() <= width, "{width}: {r:?}");
                }
            }
        }
        let cols = Columns::for_width(120, None);
        assert!(cols.times && cols.total_pct);
        assert_eq!(
            format_row(&rows[0], &cols),
            "  66.7   100.0     12.3s      1h02m \
             example.com/server.(*Handler).ServeHTTP (handler.go:42)"
        );
        let narrow = Columns::for_width(40, None);
        assert!(narrow.total_pct && !narrow.times);
        assert_eq!(
            format_row(&rows[0], &narrow),
            "  66.7   100.0 ..er.(*Handler).ServeHTTP"
        );
    }

    #[test]
    fn sort_marker_follows_the_sort() {
        let mut model = Model::default();
        let cols = Columns::for_width(100, None);
        assert!(table_header(&model, &cols, None).contains("*Own%"));
        model.sort = SortBy::Total;
        let h = table_header(&model, &cols, None);
        assert!(h.contains("*Total%") && !h.contains("*Own%"), "{h}");
        model.sort = SortBy::TotalTime;
        assert!(table_header(&model, &cols, None).contains("*TotalTime"));
    }

    #[test]
    fn plain_block_has_header_and_rows() {
        let status = Status {
            pid: 7,
            exe: "/bin/hot".into(),
            go_version: Some("go1.22.1".into()),
            frequency_hz: 99,
            interval: Duration::from_secs(1),
            ..Default::default()
        };
        let model = Model::default();
        let block = plain_block(&model, &status, 100, 10);
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 3, "{block}");
        assert!(lines[0].starts_with("gprof-bpf top  pid 7  /bin/hot  go1.22.1  99 Hz"));
        assert!(lines[1].starts_with("Samples/s 0.0  lost 0"));
        assert!(lines[2].contains("Function (file:line)"));
    }

    #[test]
    fn draws_on_tiny_and_large_terminals() {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;
        let mut model = Model::default();
        let mut p = crate::profile::Profile::new_cpu(99, std::time::SystemTime::UNIX_EPOCH);
        p.duration = Duration::from_secs(1);
        p.functions.push(crate::profile::Function {
            name: "main.hot".into(),
            ..Default::default()
        });
        p.locations.push(crate::profile::Location {
            mapping_id: 0,
            address: 1,
            lines: vec![crate::profile::Line {
                function_id: 1,
                line: 3,
            }],
        });
        p.samples.push(crate::profile::Sample {
            location_ids: vec![1],
            values: vec![10, 100_000_000],
            labels: vec![],
        });
        model.add(super::super::model::WindowSummary::of(&p, None));
        let status = Status::default();
        for (w, h) in [(1, 1), (5, 3), (20, 7), (80, 24), (300, 100)] {
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| draw(f, &model, &status)).unwrap();
            let text: String = t
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect();
            if h >= 8 {
                assert!(text.contains("main.hot"), "{w}x{h}: {text}");
            }
        }
    }
}
