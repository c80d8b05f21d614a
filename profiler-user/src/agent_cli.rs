//! `gprof-bpf agent`: its flags (each also a `GPROF_BPF_*` environment variable) laid over
//! the configuration file, and its logging.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use gprof_bpf::agent::config::{
    AgentConfig, DirectorySinkConfig, LogFormat, OtlpSinkConfig, PyroscopeSinkConfig,
};
use gprof_bpf::sink::pyroscope::PyroscopeApi;

#[derive(Args, Debug, Clone, Default)]
pub struct AgentArgs {
    /// The TOML configuration file (see docs/agent.md); flags and GPROF_BPF_* variables
    /// override it. Example: --config /etc/gprof-bpf/agent.toml
    #[arg(long, env = "GPROF_BPF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate FILE (with the flags and environment laid over it), print the effective
    /// configuration with secrets masked, and exit. Example: --check-config agent.toml
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// Samples per second per CPU [default: 19]. Example: -F 49
    #[arg(short = 'F', long, env = "GPROF_BPF_FREQUENCY", value_name = "HZ")]
    pub frequency: Option<u64>,
    /// Window length: one profile per service per window [default: 15s]. Example: --window 10s
    #[arg(long, env = "GPROF_BPF_WINDOW", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub window: Option<Duration>,
    /// CPU budget in percent of one core [default: 1]: over it the sampling rate is halved
    /// (down to 2 Hz); 0: none. Example: --cpu-budget 0.5
    #[arg(long, env = "GPROF_BPF_CPU_BUDGET", value_name = "PERCENT")]
    pub cpu_budget: Option<f64>,
    /// Push to a Pyroscope server (repeatable, or comma-separated in the variable).
    /// Example: --pyroscope http://pyroscope:4040
    #[arg(
        long,
        env = "GPROF_BPF_PYROSCOPE",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub pyroscope: Vec<String>,
    /// The tenant (X-Scope-OrgID) for --pyroscope. Example: --pyroscope-tenant team-a
    #[arg(long, env = "GPROF_BPF_PYROSCOPE_TENANT", value_name = "TENANT")]
    pub pyroscope_tenant: Option<String>,
    /// The API for --pyroscope: push (Connect, default) or ingest (legacy /ingest).
    /// Example: --pyroscope-api ingest
    #[arg(long, env = "GPROF_BPF_PYROSCOPE_API", value_name = "API")]
    pub pyroscope_api: Option<PyroscopeApi>,
    /// Export to an OTLP profiles receiver (repeatable): HTTP/protobuf by default, see
    /// --otlp-protocol. Example: --otlp http://collector:4318
    #[arg(
        long,
        env = "GPROF_BPF_OTLP",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub otlp: Vec<String>,
    /// How --otlp is carried: http/protobuf (default, port 4318) or grpc (port 4317).
    /// Example: --otlp http://collector:4317 --otlp-protocol grpc
    #[arg(long, env = "GPROF_BPF_OTLP_PROTOCOL", value_name = "PROTOCOL")]
    pub otlp_protocol: Option<gprof_bpf::sink::otlp::OtlpProtocol>,
    /// The OTLP-Profiles-Development-Version header for --otlp. Example: --otlp-development-version 1
    #[arg(long, env = "GPROF_BPF_OTLP_DEVELOPMENT_VERSION", value_name = "N")]
    pub otlp_development_version: Option<u32>,
    /// Also write pprof files, one per service and window, under DIR.
    /// Example: --directory /var/lib/gprof-bpf/profiles
    #[arg(long, env = "GPROF_BPF_DIRECTORY", value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Serve /metrics and /healthz on ADDR [default: 127.0.0.1:7476]; "off" serves nothing.
    /// Example: --listen 127.0.0.1:9476
    #[arg(long, env = "GPROF_BPF_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log format: text or json. Example: --log-format json
    #[arg(long, env = "GPROF_BPF_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log level or filter. Example: --log-level debug
    #[arg(long, env = "GPROF_BPF_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Name services from OTEL_SERVICE_NAME / PYROSCOPE_SERVICE_NAME in each process's
    /// environment (reads /proc/PID/environ). Example: --service-from-env
    #[arg(long, env = "GPROF_BPF_SERVICE_FROM_ENV")]
    pub service_from_env: bool,
    /// A static label on every series (repeatable). Example: --label env=prod
    #[arg(
        long = "label",
        env = "GPROF_BPF_LABELS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// Profile only Go programs. Example: --go-only
    #[arg(long, env = "GPROF_BPF_GO_ONLY")]
    pub go_only: bool,
    /// How long SIGTERM waits for queued profiles to be delivered [default: 10s].
    /// Example: --shutdown-timeout 30s
    #[arg(long, env = "GPROF_BPF_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
}

impl AgentArgs {
    /// Lays the flags over a configuration.
    pub fn apply(&self, c: &mut AgentConfig) {
        if let Some(f) = self.frequency {
            c.frequency_hz = f;
        }
        if let Some(w) = self.window {
            c.window = w;
        }
        if let Some(b) = self.cpu_budget {
            c.limits.cpu_percent = b;
        }
        for url in &self.pyroscope {
            c.pyroscope.push(PyroscopeSinkConfig {
                url: url.clone(),
                api: self.pyroscope_api.unwrap_or_default(),
                tenant: self.pyroscope_tenant.clone(),
                ..Default::default()
            });
        }
        if self.pyroscope.is_empty() {
            for p in &mut c.pyroscope {
                if let Some(t) = &self.pyroscope_tenant {
                    p.tenant = Some(t.clone());
                }
                if let Some(a) = self.pyroscope_api {
                    p.api = a;
                }
            }
        }
        for url in &self.otlp {
            c.otlp.push(OtlpSinkConfig {
                endpoint: url.clone(),
                protocol: self.otlp_protocol.unwrap_or_default(),
                development_version: self.otlp_development_version,
                ..Default::default()
            });
        }
        if let Some(d) = &self.directory {
            c.directory.push(DirectorySinkConfig {
                path: d.clone(),
                ..Default::default()
            });
        }
        if let Some(l) = &self.listen {
            c.http.listen = if l == "off" { String::new() } else { l.clone() };
        }
        if let Some(f) = self.log_format {
            c.log_format = f;
        }
        if let Some(l) = &self.log_level {
            c.log_level = l.clone();
        }
        if self.service_from_env {
            c.labels.service_from_env = true;
        }
        for l in &self.labels {
            if let Some((k, v)) = l.split_once('=') {
                c.labels.external.insert(k.to_string(), v.to_string());
            }
        }
        if self.go_only {
            c.select.go_only = true;
        }
        if let Some(t) = self.shutdown_timeout {
            c.shutdown_timeout = t;
        }
    }

    /// The configuration: the file (if any), the flags over it, validated.
    pub fn resolve(&self, file: Option<&PathBuf>) -> Result<AgentConfig> {
        for l in &self.labels {
            if !l.contains('=') {
                bail!("--label {l:?}: expected KEY=VALUE");
            }
        }
        let mut c = match file {
            Some(f) => AgentConfig::load(f)?,
            None => AgentConfig::default(),
        };
        self.apply(&mut c);
        c.validate()?;
        Ok(c)
    }
}

fn init_logging(c: &AgentConfig) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&c.log_level)
        .with_context(|| format!("log_level {:?}", c.log_level))?;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match c.log_format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("logging: {e}"))
}

pub fn agent_cmd(args: AgentArgs) -> Result<()> {
    if let Some(f) = &args.check_config {
        let c = args.resolve(Some(f))?;
        print!("{}", c.effective());
        eprintln!("gprof-bpf: {}: configuration is valid", f.display());
        return Ok(());
    }
    let config = args.resolve(args.config.as_ref())?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let file = args.config.clone();
    runtime.block_on(gprof_bpf::agent::run(config, file, &|c| args.apply(c)))?;
    Ok(())
}
