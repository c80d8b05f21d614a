//! `gprof-bpf`: profile running Go programs from outside, with eBPF.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
mod agent_cli;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use gprof_bpf::profile::Profile;
use gprof_bpf::record::{self, RecordOptions};
use gprof_bpf::report::{self, Format, TextOptions};

#[derive(Parser, Debug)]
#[command(
    name = "gprof-bpf",
    version,
    about = "Sampling CPU profiler for running Go programs (eBPF; no restart, no instrumentation)",
    long_about = "Sampling CPU profiler for running Go programs (eBPF; no restart, no instrumentation).\n\n\
        Examples:\n  sudo gprof-bpf --pid 1234 --duration 10s\n  sudo gprof-bpf --pid 1234 --list 'main\\.' \n  \
        sudo gprof-bpf --all -d 30s -o host.pb.gz\n  sudo gprof-bpf -- ./myserver --port 8080\n  \
        gprof-bpf report cpu.pb.gz --top 20\n  gprof-bpf addr2line -e ./myserver --inlines < pcs.txt\n  \
        gprof-bpf completions bash > /etc/bash_completion.d/gprof-bpf\n  gprof-bpf man | man -l -",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Record a profile (the default when no subcommand is given).
    Record(RecordArgs),
    /// Render a saved pprof profile (ours or one written by Go's runtime/pprof).
    Report(ReportArgs),
    /// Profile every process of the host continuously and ship one profile per service per
    /// window to Pyroscope or a directory (the fleet agent; see docs/agent.md).
    Agent(agent_cli::AgentArgs),
    /// A live view of the functions a process spends its CPU in (as py-spy top).
    Top(TopArgs),
    /// Symbolize addresses read from stdin with a Go binary's own pclntab.
    Addr2line(Addr2lineArgs),
    /// Print every goroutine of a running Go process, as Go's own traceback does.
    Dump(DumpArgs),
    /// Print a shell completion script: `gprof-bpf completions bash > /etc/bash_completion.d/gprof-bpf`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `gprof-bpf man | man -l -`.
    Man,
}

#[derive(Args, Debug, Default, Clone)]
struct OutputArgs {
    /// Print annotated source listings of functions matching REGEX (as `go tool pprof -list`).
    #[arg(long, value_name = "REGEX")]
    list: Option<String>,
    /// Print the N hottest functions (as `go tool pprof -top`; 0: every function).
    #[arg(long, value_name = "N")]
    top: Option<usize>,
    /// Attribute inlined code to its caller (as pprof's -noinlines).
    #[arg(long)]
    noinlines: bool,
    /// Directory to search for source files (repeatable).
    #[arg(long = "source-path", value_name = "DIR")]
    source_paths: Vec<PathBuf>,
    /// Prefix to strip from recorded source paths before searching (repeatable).
    #[arg(long = "trim-path", value_name = "PREFIX")]
    trim_paths: Vec<String>,
    /// A GOROOT to find standard-library sources in, before $GOROOT, `go env GOROOT`,
    /// /usr/local/go and /usr/lib/go-* (repeatable; the profile's Go version picks among them).
    #[arg(long = "goroot", value_name = "DIR", value_parser = parse_goroot)]
    goroots: Vec<PathBuf>,
    /// Write the profile to FILE (.pb.gz pprof, .svg flamegraph, .folded collapsed stacks, .txt).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Vec<PathBuf>,
    /// Output format for -o when the extension does not say: pprof, svg, folded, text.
    #[arg(long, value_name = "FMT")]
    format: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
struct RecordArgs {
    /// Process id(s) to profile: --pid 12 --pid 34 or --pid 12,34.
    #[arg(short, long = "pid", value_name = "PID", value_delimiter = ',')]
    pids: Vec<u32>,
    /// Profile every process on the host.
    #[arg(short, long)]
    all: bool,
    /// Also profile children and exec'd descendants of the profiled processes.
    #[arg(long)]
    subprocesses: bool,
    /// Stop after this long (30, 30s, 2m, 1h30m, 500ms; at most 30 days). Default: until Ctrl-C.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_record_duration)]
    duration: Option<Duration>,
    /// Samples per second per CPU (1 to 100000).
    #[arg(short = 'F', long, default_value_t = 99, value_name = "HZ",
          value_parser = clap::value_parser!(u64).range(1..=MAX_FREQUENCY_HZ))]
    frequency: u64,
    /// How often the kernel maps are emptied into the agent (10ms to 60s).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_drain_interval)]
    drain_interval: Duration,
    /// No progress messages on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Keep the thread id of every sample (a `tid` label); off by default, it multiplies the
    /// number of distinct samples.
    #[arg(long)]
    threads: bool,
    /// Keep the goroutine id of every sample of a Go process (a numeric `goroutine` label);
    /// off by default, it multiplies the number of distinct samples. pprof labels are always
    /// kept.
    #[arg(long)]
    goroutines: bool,
    /// Read no goroutine data in the kernel: no pprof labels, no goroutine ids (each sample
    /// then costs only its stack walk).
    #[arg(long, conflicts_with_all = ["goroutines", "tags", "by_tag"])]
    no_labels: bool,
    #[command(flatten)]
    labels: TagArgs,
    /// Sample at exactly 1/frequency instead of a period varied randomly around it (the
    /// variation keeps sampling from locking onto periodic work; the mean rate is the same).
    #[arg(long)]
    no_jitter: bool,
    /// Cut the recording into windows this long and write each as a pprof file into
    /// --window-dir (the report still covers the whole recording).
    #[arg(long, value_name = "DURATION", value_parser = parse_window, requires = "window_dir")]
    window: Option<Duration>,
    /// Directory for the per-window profiles (window-00001.pb.gz, ...).
    #[arg(long, value_name = "DIR", requires = "window")]
    window_dir: Option<PathBuf>,
    /// Write only the windows, no whole-run report: memory stays bounded for a recording of
    /// any length (a poor man's agent).
    #[arg(long, requires = "window")]
    windows_only: bool,
    /// Developer option: also write the recording's inputs (batches, events, what was read
    /// from /proc) to FILE, to replay them later without root (`gprof_bpf::capture`).
    #[arg(long, value_name = "FILE", hide = true)]
    capture: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
    /// Command to start and profile from its first instruction: gprof-bpf -- ./prog args.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct TopArgs {
    /// Process id to watch.
    #[arg(short, long, value_name = "PID")]
    pid: u32,
    /// Samples per second per CPU (1 to 100000).
    #[arg(short = 'F', long = "rate", alias = "frequency", default_value_t = 99, value_name = "HZ",
          value_parser = clap::value_parser!(u64).range(1..=MAX_FREQUENCY_HZ))]
    rate: u64,
    /// How often the view refreshes (200ms to 10m).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_top_interval)]
    interval: Duration,
    /// Also count the process's children and exec'd descendants.
    #[arg(long)]
    subprocesses: bool,
    /// Split each function by the value of this sample label (`pid`, `process`, and the pprof
    /// labels the target sets once they are collected).
    #[arg(long, value_name = "KEY")]
    by_tag: Option<String>,
}

fn parse_top_interval(s: &str) -> Result<Duration, String> {
    parse_duration(s, Duration::from_millis(200), Duration::from_secs(600))
}

/// Selecting and grouping samples by their pprof labels (`record` and `report`).
#[derive(Args, Debug, Clone, Default)]
struct TagArgs {
    /// Keep only samples whose pprof label KEY equals VALUE (KEY=VALUE) or matches a regular
    /// expression (KEY=~REGEX); repeatable, all must match.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = report::tags::TagFilter::parse)]
    tags: Vec<report::tags::TagFilter>,
    /// With --top: one table per value of pprof label KEY.
    #[arg(long = "by-tag", value_name = "KEY")]
    by_tag: Option<String>,
}

impl TagArgs {
    /// Keeps the matching samples, then writes the files and prints the report (once per
    /// value of `--by-tag`).
    fn emit(&self, mut profile: Profile, output: &OutputArgs, plan: &OutputPlan) -> Result<()> {
        report::tags::keep_matching(&mut profile, &self.tags);
        match &self.by_tag {
            Some(key) => emit_by_tag(&profile, key, plan),
            None => emit(&profile, output, plan),
        }
    }
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A pprof profile (.pb.gz or uncompressed).
    file: PathBuf,
    #[command(flatten)]
    labels: TagArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
struct Addr2lineArgs {
    /// The Go binary (stripped binaries work: the pclntab is always there).
    #[arg(short = 'e', long = "exe", value_name = "BINARY")]
    binary: PathBuf,
    /// Print every inlined frame, innermost first, then an empty line.
    #[arg(long)]
    inlines: bool,
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// The Go process (stripped, PIE and cgo binaries work).
    #[arg(long)]
    pid: i32,
    /// One JSON document instead of Go's traceback text.
    #[arg(long)]
    json: bool,
    /// Stop the process (ptrace) while reading, for an exact snapshot; running goroutines
    /// then get their stacks too.
    #[arg(long)]
    lock: bool,
    /// Include the runtime's own goroutines (as GOTRACEBACK=system).
    #[arg(long)]
    system: bool,
}

/// Highest `--frequency`: beyond it the kernel throttles perf events anyway.
const MAX_FREQUENCY_HZ: u64 = 100_000;
/// Longest `--duration`: long enough for any recording, short enough that deadlines computed
/// from it cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// `--drain-interval` bounds: more often is pure overhead, less often lets the maps fill.
const DRAIN_INTERVAL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(60));
/// Largest profile `report` reads, and largest binary `addr2line` reads: bigger files (or
/// things that are not regular files, like `/dev/zero`) are refused before reading.
const MAX_PROFILE_BYTES: u64 = 256 << 20;
const MAX_BINARY_BYTES: u64 = 1 << 30;

/// A duration as humantime reads it (`1h30m`, `500ms`, `2.5s`); a bare number is seconds.
/// Out of `min..=max` is an error, never an overflow later.
fn parse_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let bare = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    let with_unit = if bare { format!("{s}s") } else { s.to_string() };
    let range = || {
        format!(
            "must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        )
    };
    match humantime::parse_duration(&with_unit) {
        Ok(d) if (min..=max).contains(&d) => Ok(d),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(range()),
        Err(e) => Err(format!("{e} (examples: 30, 30s, 2m, 1h30m, 500ms)")),
    }
}

fn parse_record_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s, Duration::from_millis(1), MAX_DURATION)
}

fn parse_window(s: &str) -> Result<Duration, String> {
    parse_duration(s, Duration::from_millis(100), MAX_DURATION)
}

fn parse_drain_interval(s: &str) -> Result<Duration, String> {
    parse_duration(s, DRAIN_INTERVAL.0, DRAIN_INTERVAL.1)
}

/// A directory holding a Go tree (`DIR/src`).
fn parse_goroot(s: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(s);
    if dir.join("src").is_dir() {
        Ok(dir)
    } else {
        Err("not a GOROOT (no src directory in it)".into())
    }
}

/// Opens `path`, which must be a regular file of at most `limit` bytes: (file, its length).
fn open_regular_file(path: &Path, limit: u64) -> Result<(std::fs::File, u64)> {
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("reading {shown}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {shown}"))?;
    if !meta.is_file() {
        bail!("{shown}: not a regular file");
    }
    if meta.len() > limit {
        bail!("{shown}: larger than the {} MiB limit", limit >> 20);
    }
    Ok((file, meta.len()))
}

/// The bytes of `path`, a regular file of at most `limit` bytes (a one-line error otherwise).
fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let shown = path.display();
    let (file, len) = open_regular_file(path, limit)?;
    let too_big = || anyhow::anyhow!("{shown}: larger than the {} MiB limit", limit >> 20);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Maps a regular file of at most `limit` bytes read-only (`addr2line` is a one-shot run over
/// one binary: mapping saves reading the whole file, of which only the pclntab is touched).
fn map_regular_file(path: &Path, limit: u64) -> Result<memmap2::Mmap> {
    let shown = path.display();
    let (file, _) = open_regular_file(path, limit)?;
    // SAFETY: the mapping is read-only and private, and nothing in this process writes the
    // file. Another process truncating or rewriting the binary while this one-shot command
    // runs would change or fault the bytes under us; that is the contract of every mmap-based
    // binary tool (objdump, addr2line), which we accept for this command only.
    unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {shown}"))
}

fn text_options(o: &OutputArgs) -> Result<TextOptions> {
    let list = match o.list.as_deref() {
        // The regex crate explains a syntax error over several lines (pattern, caret, cause):
        // keep the cause.
        Some(re) => Some(regex::Regex::new(re).map_err(|e| {
            let text = e.to_string();
            let cause = text.lines().last().unwrap_or_default();
            anyhow::anyhow!(
                "--list {re:?}: {}",
                cause.strip_prefix("error: ").unwrap_or(cause)
            )
        })?),
        None => None,
    };
    Ok(TextOptions {
        list,
        top: o.top,
        noinlines: o.noinlines,
        source_paths: o.source_paths.clone(),
        trim_paths: o.trim_paths.clone(),
        goroots: o.goroots.clone(),
    })
}

fn parse_format(name: &str) -> Result<Format> {
    Ok(match name {
        "pprof" | "pb" | "pb.gz" => Format::Pprof,
        "svg" | "flamegraph" => Format::Svg,
        "folded" | "collapsed" => Format::Folded,
        "text" | "txt" => Format::Text,
        _ => bail!("unknown --format {name:?} (pprof, svg, folded, text)"),
    })
}

/// What the output flags ask for, checked before a recording starts so that a typo in them
/// does not throw the recording away at its end.
struct OutputPlan {
    opts: TextOptions,
    files: Vec<(PathBuf, Format)>,
}

fn plan_outputs(o: &OutputArgs) -> Result<OutputPlan> {
    let opts = text_options(o)?;
    let mut files = Vec::new();
    for path in &o.output {
        let format = match &o.format {
            Some(f) => parse_format(f)?,
            None => report::format_from_path(path).with_context(|| {
                format!(
                    "cannot tell the format of {} from its extension: add --format",
                    path.display()
                )
            })?,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            bail!("-o {}: no directory {}", path.display(), dir.display());
        }
        files.push((path.clone(), format));
    }
    Ok(OutputPlan { opts, files })
}

/// Writes the requested files, or the text report on stdout when there are none (or when a
/// listing or top table was asked for explicitly).
fn emit(profile: &Profile, o: &OutputArgs, plan: &OutputPlan) -> Result<()> {
    let opts = &plan.opts;
    for (path, format) in &plan.files {
        report::write_file(profile, path, *format, opts)?;
        eprintln!("gprof-bpf: wrote {}", path.display());
    }
    if o.output.is_empty() || o.list.is_some() || o.top.is_some() {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        report::render_text(profile, opts, &mut out)?;
        if let Some(f) = report::footer(profile) {
            writeln!(out, "{f}")?;
        }
    } else if let Some(f) = report::footer(profile) {
        eprintln!("{f}");
    }
    Ok(())
}

fn record_cmd(args: RecordArgs) -> Result<()> {
    if args.all && !args.pids.is_empty() {
        bail!("--all and --pid exclude each other");
    }
    let plan = plan_outputs(&args.output)?;
    let opts = RecordOptions {
        pids: args.pids.clone(),
        all: args.all,
        subprocesses: args.subprocesses,
        command: args.command.clone(),
        frequency_hz: args.frequency,
        duration: args.duration,
        drain_interval: args.drain_interval,
        threads: args.threads,
        goroutines: args.goroutines,
        goroutine_data: !args.no_labels,
        jitter: !args.no_jitter,
        window: args.window,
        window_dir: args.window_dir.clone(),
        keep_total: !args.windows_only,
        capture: args.capture.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut profile = runtime.block_on(record::run(opts, args.quiet))?;
    if args.windows_only {
        report::tags::keep_matching(&mut profile, &args.labels.tags);
        // The windows are the output; what the run lost and cost still goes to stderr.
        if let Some(footer) = report::footer(&profile) {
            eprintln!("{footer}");
        }
        return Ok(());
    }
    args.labels.emit(profile, &args.output, &plan)
}

/// `--by-tag KEY`: the files as usual, then the text report once per value of label KEY.
fn emit_by_tag(profile: &Profile, key: &str, plan: &OutputPlan) -> Result<()> {
    for (path, format) in &plan.files {
        report::write_file(profile, path, *format, &plan.opts)?;
        eprintln!("gprof-bpf: wrote {}", path.display());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (value, part) in report::tags::split_by(profile, key) {
        match value {
            Some(v) => writeln!(out, "--- {key}={v} ---")?,
            None => writeln!(out, "--- no {key} label ---")?,
        }
        report::render_text(&part, &plan.opts, &mut out)?;
    }
    if let Some(f) = report::footer(profile) {
        writeln!(out, "{f}")?;
    }
    Ok(())
}

/// Parses the command line; a usage error is one line (clap's message and its tip), exit 2.
fn parse_cli() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // Clap's paragraphs: the message (maybe with indented details), tips, usage, and
            // a pointer to --help. Keep the message and the tips.
            let text = e.render().to_string();
            let paragraphs: Vec<String> = text
                .split("\n\n")
                .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|p| !p.is_empty())
                .collect();
            let first = paragraphs
                .first()
                .map_or("invalid command line", |p| p.as_str());
            let mut msg = first.strip_prefix("error: ").unwrap_or(first).to_string();
            for tip in paragraphs.iter().filter(|p| p.starts_with("tip:")) {
                msg.push_str("; ");
                msg.push_str(tip);
            }
            eprintln!("gprof-bpf: error: {msg} (see --help)");
            std::process::exit(e.exit_code());
        }
    }
}

fn main() {
    let cli = parse_cli();
    if !matches!(cli.command, Some(Command::Agent(_))) {
        // The agent logs through tracing (text or JSON), set up from its configuration.
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    }
    let result = match cli.command {
        Some(Command::Agent(args)) => agent_cli::agent_cmd(args),
        Some(Command::Record(args)) => record_cmd(args),
        Some(Command::Top(a)) => gprof_bpf::top::run(gprof_bpf::top::TopOptions {
            pid: a.pid,
            frequency_hz: a.rate,
            interval: a.interval,
            subprocesses: a.subprocesses,
            by_tag: a.by_tag,
            ..Default::default()
        })
        .map_err(Into::into),
        None => record_cmd(cli.record),
        Some(Command::Report(args)) => (|| {
            let plan = plan_outputs(&args.output)?;
            let bytes = read_regular_file(&args.file, MAX_PROFILE_BYTES)?;
            let profile =
                report::decode_pprof(&bytes).with_context(|| format!("{}", args.file.display()))?;
            args.labels.emit(profile, &args.output, &plan)
        })(),
        Some(Command::Addr2line(args)) => (|| {
            let bytes = map_regular_file(&args.binary, MAX_BINARY_BYTES)?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            // `run` writes large buffers: no BufWriter copy in between.
            gprof_bpf::addr2line::run(&bytes, stdin.lock(), stdout.lock(), args.inlines)
                .with_context(|| format!("{}", args.binary.display()))
        })(),
        Some(Command::Dump(a)) => gprof_bpf::goruntime::dump::run(a.pid, a.json, a.lock, a.system),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "gprof-bpf",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Some(Command::Man) => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .context("writing the man page"),
    };
    if let Err(e) = result {
        // One line whatever the causes' own formatting.
        let msg = format!("{e:#}");
        let msg: Vec<&str> = msg
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        eprintln!("gprof-bpf: error: {}", msg.join(" "));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = parse_record_duration;
        assert_eq!(d("5").unwrap(), Duration::from_secs(5));
        assert_eq!(d("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(d("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(d("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(d("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("30d").unwrap(), MAX_DURATION);
        for bad in ["0", "5x", "", "-1", "31d", "6000000000000000h", "1e9"] {
            assert!(d(bad).is_err(), "{bad:?}");
        }
        assert!(parse_drain_interval("1ms").is_err());
        assert!(parse_drain_interval("2m").is_err());
        assert_eq!(
            parse_drain_interval("250ms").unwrap(),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn cli_shapes() {
        let c = Cli::try_parse_from(["gprof-bpf", "--pid", "1,2", "-d", "3s"]).unwrap();
        assert_eq!(c.record.pids, vec![1, 2]);
        let c = Cli::try_parse_from(["gprof-bpf", "record", "--pid", "7"]).unwrap();
        assert!(matches!(c.command, Some(Command::Record(ref r)) if r.pids == vec![7]));
        let c = Cli::try_parse_from(["gprof-bpf", "--", "./prog", "-x"]).unwrap();
        assert_eq!(c.record.command, vec!["./prog", "-x"]);
        let c = Cli::try_parse_from(["gprof-bpf", "addr2line", "-e", "bin", "--inlines"]).unwrap();
        assert!(matches!(c.command, Some(Command::Addr2line(_))));
    }
}
