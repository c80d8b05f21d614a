//! `gprof-bpf`: profile running Go programs from outside, with eBPF.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
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
        gprof-bpf report cpu.pb.gz --top 20\n  gprof-bpf addr2line -e ./myserver --inlines < pcs.txt",
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
    /// Symbolize addresses read from stdin with a Go binary's own pclntab.
    Addr2line(Addr2lineArgs),
}

#[derive(Args, Debug, Default, Clone)]
struct OutputArgs {
    /// Print annotated source listings of functions matching REGEX (as `go tool pprof -list`).
    #[arg(long, value_name = "REGEX")]
    list: Option<String>,
    /// Print the N hottest functions (as `go tool pprof -top`).
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
    /// Stop after this long (e.g. 30, 30s, 2m, 500ms). Default: until Ctrl-C.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Samples per second per CPU.
    #[arg(short = 'F', long, default_value_t = 99, value_name = "HZ")]
    frequency: u64,
    /// How often the kernel maps are emptied into the agent.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    drain_interval: Duration,
    /// No progress messages on stderr.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    output: OutputArgs,
    /// Command to start and profile from its first instruction: gprof-bpf -- ./prog args.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A pprof profile (.pb.gz or uncompressed).
    file: PathBuf,
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 30, 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
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

fn text_options(o: &OutputArgs) -> Result<TextOptions> {
    Ok(TextOptions {
        list: o
            .list
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("--list")?,
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

/// Writes the requested files, or the text report on stdout when there are none (or when a
/// listing or top table was asked for explicitly).
fn emit(profile: &Profile, o: &OutputArgs) -> Result<()> {
    let opts = text_options(o)?;
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
        report::write_file(profile, path, format, &opts)?;
        eprintln!("gprof-bpf: wrote {}", path.display());
    }
    if o.output.is_empty() || o.list.is_some() || o.top.is_some() {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        report::render_text(profile, &opts, &mut out)?;
        if let Some(f) = report::footer(profile) {
            writeln!(out, "{f}")?;
        }
    } else if let Some(f) = report::footer(profile) {
        eprintln!("{f}");
    }
    Ok(())
}

fn record_cmd(args: RecordArgs) -> Result<()> {
    if args.frequency == 0 || args.frequency > 100_000 {
        bail!("--frequency must be between 1 and 100000 Hz");
    }
    if args.all && !args.pids.is_empty() {
        bail!("--all and --pid exclude each other");
    }
    let opts = RecordOptions {
        pids: args.pids.clone(),
        all: args.all,
        subprocesses: args.subprocesses,
        command: args.command.clone(),
        frequency_hz: args.frequency,
        duration: args.duration,
        drain_interval: args.drain_interval,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profile = runtime.block_on(record::run(opts, args.quiet))?;
    emit(&profile, &args.output)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Record(args)) => record_cmd(args),
        None => record_cmd(cli.record),
        Some(Command::Report(args)) => (|| {
            let bytes = std::fs::read(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            let profile =
                report::decode_pprof(&bytes).with_context(|| format!("{}", args.file.display()))?;
            emit(&profile, &args.output)
        })(),
        Some(Command::Addr2line(args)) => (|| {
            let bytes = std::fs::read(&args.binary)
                .with_context(|| format!("reading {}", args.binary.display()))?;
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            gprof_bpf::addr2line::run(
                &bytes,
                stdin.lock(),
                std::io::BufWriter::new(stdout.lock()),
                args.inlines,
            )
        })(),
    };
    if let Err(e) = result {
        eprintln!("gprof-bpf: error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
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
