//! The agent's configuration: a TOML file, overridden by flags and `GPROF_BPF_*` environment
//! variables (clap reads those), checked as a whole before anything starts. A bad value gets
//! one line that names its key (`pyroscope[0].timeout: invalid duration ...`).
//!
//! Secrets (tokens, passwords) are never values here: only the file or environment variable
//! that holds them, read at start ([`super::secrets`]), so neither argv, the effective
//! configuration nor the logs can show them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sink::pyroscope::PyroscopeApi;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {key}: {message}")]
    Value {
        path: String,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Samples per second per CPU (the fleet convention: 19).
    pub frequency_hz: u64,
    /// One profile per service per window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub log_format: LogFormat,
    /// `error`, `warn`, `info`, `debug` (or a tracing filter such as `gprof_bpf=debug`).
    pub log_level: String,
    /// How long SIGTERM waits for the sinks to deliver what is queued.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    pub select: Select,
    pub labels: Labels,
    pub relabel: Vec<Relabel>,
    pub http: HttpServer,
    pub pyroscope: Vec<PyroscopeSinkConfig>,
    pub otlp: Vec<OtlpSinkConfig>,
    pub directory: Vec<DirectorySinkConfig>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            frequency_hz: 19,
            window: Duration::from_secs(15),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            shutdown_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            select: Select::default(),
            labels: Labels::default(),
            relabel: Vec::new(),
            http: HttpServer::default(),
            pyroscope: Vec::new(),
            otlp: Vec::new(),
            directory: Vec::new(),
        }
    }
}

/// What the agent allows itself, so that it never hurts its host.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Resident memory cap, MiB (0: none): over it at a window's end, the window is dropped
    /// (counted in `gprof_bpf_windows_shed_total`, logged) and the caches are emptied.
    pub memory_mib: u64,
    /// CPU budget, percent of one core (0: none): over it (measured over ≥ 5 s at window
    /// ends), the sampling rate is halved down to 2 Hz, and raised back when well under it;
    /// every change is logged and `gprof_bpf_sampling_rate_hz` shows the rate in effect.
    pub cpu_percent: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 200,
            cpu_percent: 1.0,
        }
    }
}

/// Which processes are profiled: all by default; with any `include` selector, those that match
/// one; never those that match an `exclude` selector.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Select {
    pub include: Selector,
    pub exclude: Selector,
    /// Only Go programs (those with a Go build info).
    pub go_only: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Selector {
    /// Globs on the executable's path (`/usr/local/bin/*`).
    pub exe: Vec<String>,
    /// Regular expressions on the command name (`/proc/PID/comm`).
    pub comm: Vec<String>,
    /// Prefixes of the cgroup v2 path (`/system.slice/billing.service`).
    pub cgroup: Vec<String>,
    /// Container ids (a prefix of at least 12 hex digits is enough).
    pub container_id: Vec<String>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.exe.is_empty()
            && self.comm.is_empty()
            && self.cgroup.is_empty()
            && self.container_id.is_empty()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Labels {
    /// Name services from `OTEL_SERVICE_NAME` / `PYROSCOPE_SERVICE_NAME` in the process's
    /// environment (reads /proc/PID/environ, so opt-in).
    pub service_from_env: bool,
    /// `host_name`; empty: this host's name.
    pub host_name: String,
    /// Added to every series.
    pub external: BTreeMap<String, String>,
    /// Add `go_version` and `build_id` series labels.
    pub go_version: bool,
    pub build_id: bool,
}

impl Default for Labels {
    fn default() -> Self {
        Labels {
            service_from_env: false,
            host_name: String::new(),
            external: BTreeMap::new(),
            go_version: true,
            build_id: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` to `replacement` (with `$1`... from `regex`) when `regex` matches.
    #[default]
    Replace,
    /// Keep only series whose joined source labels match.
    Keep,
    /// Drop series whose joined source labels match.
    Drop,
    /// Remove the labels whose names match.
    LabelDrop,
}

/// A Prometheus-style relabel rule, applied to each series' labels (`service_name` included).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relabel {
    pub action: RelabelAction,
    pub source_labels: Vec<String>,
    pub separator: String,
    /// Anchored at both ends, as Prometheus does.
    pub regex: String,
    pub target_label: String,
    pub replacement: String,
}

impl Default for Relabel {
    fn default() -> Self {
        Relabel {
            action: RelabelAction::Replace,
            source_labels: Vec::new(),
            separator: ";".into(),
            regex: "(.*)".into(),
            target_label: String::new(),
            replacement: "$1".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServer {
    /// Where `/metrics`, `/healthz` and `/debug/pprof/profile` are served; empty: nowhere.
    pub listen: String,
    pub metrics: bool,
    /// `GET /debug/pprof/profile?seconds=N&pid=P` (or `service=`, `container=`).
    pub pprof: bool,
    /// Required from clients that are not on loopback (as `Authorization: Bearer TOKEN`);
    /// listening on a non-loopback address with the pprof endpoint needs one.
    pub token: SecretRef,
}

impl Default for HttpServer {
    fn default() -> Self {
        HttpServer {
            listen: "127.0.0.1:7476".into(),
            metrics: true,
            pprof: true,
            token: SecretRef::default(),
        }
    }
}

/// Where a secret comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretRef {
    /// A file whose content (trailing newline removed) is the secret.
    pub file: Option<PathBuf>,
    /// An environment variable of the agent that holds it.
    pub env: Option<String>,
}

impl SecretRef {
    pub fn is_set(&self) -> bool {
        self.file.is_some() || self.env.is_some()
    }

    pub fn read(&self, key: &str) -> Result<Option<crate::sink::http::Secret>, ConfigError> {
        let value = match (&self.file, &self.env) {
            (Some(_), Some(_)) => return Err(invalid(key, "set file or env, not both")),
            (Some(f), None) => std::fs::read_to_string(f)
                .map_err(|error| ConfigError::Read {
                    path: f.clone(),
                    error,
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            (None, Some(e)) => std::env::var(e)
                .map_err(|_| invalid(key, format!("environment variable {e} is not set")))?,
            (None, None) => return Ok(None),
        };
        Ok(Some(crate::sink::http::Secret(value)))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: SecretRef,
}

/// How an HTTP sink talks to its server: timeout, auth, headers, TLS.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoint {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub bearer_token: SecretRef,
    pub basic_auth: Option<BasicAuth>,
    /// Extra headers; their values are masked in `--check-config`.
    pub headers: BTreeMap<String, String>,
    /// Secret headers: name → where the value comes from.
    pub secret_headers: BTreeMap<String, SecretRef>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            timeout: Duration::from_secs(10),
            bearer_token: SecretRef::default(),
            basic_auth: None,
            headers: BTreeMap::new(),
            secret_headers: BTreeMap::new(),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

/// A sink's queue and retries.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Bounds: profiles and MiB; the oldest are dropped beyond them.
    pub max_profiles: usize,
    pub max_mib: usize,
    #[serde(with = "humantime_serde")]
    pub min_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            max_profiles: 1000,
            max_mib: 64,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PyroscopeSinkConfig {
    /// Base URL, e.g. `http://pyroscope:4040`.
    pub url: String,
    pub api: PyroscopeApi,
    /// `X-Scope-OrgID`.
    pub tenant: Option<String>,
    pub http: Endpoint,
    pub queue: Queue,
}

/// An OTLP profiles receiver (an OpenTelemetry Collector, or a backend).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSinkConfig {
    /// Base URL: `http://collector:4318` for HTTP/protobuf (`/v1development/profiles` is
    /// added), `http://collector:4317` for gRPC; `https://` for TLS.
    pub endpoint: String,
    /// `http/protobuf` (default) or `grpc`.
    pub protocol: crate::sink::otlp::OtlpProtocol,
    /// The `OTLP-Profiles-Development-Version` header; unset: not sent (receivers assume 1).
    pub development_version: Option<u32>,
    pub http: Endpoint,
    pub queue: Queue,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectorySinkConfig {
    pub path: PathBuf,
    /// Keep at most this many MiB of files (oldest removed first).
    pub max_mib: Option<u64>,
    /// Remove files older than this.
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

impl AgentConfig {
    /// Reads a TOML file; every error names the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Value {
            path: origin.to_string(),
            key: "(syntax)".into(),
            message: one_line(&e.to_string()),
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Value {
            path: origin.to_string(),
            key: e.path().to_string(),
            message: one_line(e.inner().message()),
        })
    }

    /// Checks what serde cannot: ranges, URLs, regexes, globs, files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.frequency_hz) {
            return Err(invalid("frequency_hz", "must be 1..=10000"));
        }
        if self.window < Duration::from_secs(1) {
            return Err(invalid("window", "must be at least 1s"));
        }
        for (key, sel) in [
            ("select.include", &self.select.include),
            ("select.exclude", &self.select.exclude),
        ] {
            for (i, g) in sel.exe.iter().enumerate() {
                globset::Glob::new(g)
                    .map_err(|e| invalid(&format!("{key}.exe[{i}]"), e.to_string()))?;
            }
            for (i, r) in sel.comm.iter().enumerate() {
                regex::Regex::new(r)
                    .map_err(|e| invalid(&format!("{key}.comm[{i}]"), one_line(&e.to_string())))?;
            }
        }
        for (i, r) in self.relabel.iter().enumerate() {
            regex::Regex::new(&format!("^(?:{})$", r.regex))
                .map_err(|e| invalid(&format!("relabel[{i}].regex"), one_line(&e.to_string())))?;
            if r.action == RelabelAction::Replace && r.target_label.is_empty() {
                return Err(invalid(
                    &format!("relabel[{i}].target_label"),
                    "required for replace",
                ));
            }
        }
        if !self.http.listen.is_empty() {
            let addr = self
                .http
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| invalid("http.listen", e.to_string()))?;
            let token = self.http.token.read("http.token")?;
            if self.http.pprof && !addr.ip().is_loopback() && token.is_none() {
                return Err(invalid(
                    "http.token",
                    "required when the pprof endpoint listens beyond loopback",
                ));
            }
        }
        for (i, p) in self.pyroscope.iter().enumerate() {
            let key = format!("pyroscope[{i}]");
            let url = reqwest::Url::parse(&p.url)
                .map_err(|e| invalid(&format!("{key}.url"), format!("{:?}: {e}", p.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&format!("{key}.url"), "must be http or https"));
            }
            p.http.validate(&format!("{key}.http"))?;
            if p.queue.max_profiles == 0 || p.queue.max_mib == 0 {
                return Err(invalid(
                    &format!("{key}.queue"),
                    "a queue must hold something",
                ));
            }
        }
        for (i, o) in self.otlp.iter().enumerate() {
            let key = format!("otlp[{i}]");
            let url = reqwest::Url::parse(&o.endpoint).map_err(|e| {
                invalid(&format!("{key}.endpoint"), format!("{:?}: {e}", o.endpoint))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&format!("{key}.endpoint"), "must be http or https"));
            }
            o.http.validate(&format!("{key}.http"))?;
            if o.queue.max_profiles == 0 || o.queue.max_mib == 0 {
                return Err(invalid(
                    &format!("{key}.queue"),
                    "a queue must hold something",
                ));
            }
        }
        for (i, d) in self.directory.iter().enumerate() {
            if d.path.as_os_str().is_empty() {
                return Err(invalid(&format!("directory[{i}].path"), "required"));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML (secrets are references; header values masked).
    pub fn effective(&self) -> String {
        let mut shown = self.clone();
        let headers = shown
            .pyroscope
            .iter_mut()
            .map(|p| &mut p.http.headers)
            .chain(shown.otlp.iter_mut().map(|o| &mut o.http.headers));
        for h in headers {
            for v in h.values_mut() {
                *v = "<masked>".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}"))
    }
}

impl Endpoint {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(invalid(
                &format!("{key}.client_cert"),
                "client_cert and client_key go together",
            ));
        }
        for (name, f) in [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
        ] {
            if let Some(f) = f
                && !f.exists()
            {
                return Err(invalid(
                    &format!("{key}.{name}"),
                    format!("{}: no such file", f.display()),
                ));
            }
        }
        self.bearer_token.read(&format!("{key}.bearer_token"))?;
        if let Some(b) = &self.basic_auth {
            b.password.read(&format!("{key}.basic_auth.password"))?;
        }
        for (h, s) in &self.secret_headers {
            s.read(&format!("{key}.secret_headers.{h}"))?;
        }
        Ok(())
    }

    /// The HTTP client options, with the secrets read.
    pub fn resolve(&self, key: &str) -> Result<crate::sink::http::HttpOptions, ConfigError> {
        use crate::sink::http::{HttpOptions, Secret};
        let mut headers: Vec<(String, Secret)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Secret(v.clone())))
            .collect();
        for (h, s) in &self.secret_headers {
            if let Some(v) = s.read(&format!("{key}.secret_headers.{h}"))? {
                headers.push((h.clone(), v));
            }
        }
        let basic_auth = match &self.basic_auth {
            Some(b) => Some((
                b.username.clone(),
                b.password
                    .read(&format!("{key}.basic_auth.password"))?
                    .unwrap_or_default(),
            )),
            None => None,
        };
        let http = HttpOptions {
            timeout: Some(self.timeout),
            bearer_token: self.bearer_token.read(&format!("{key}.bearer_token"))?,
            basic_auth,
            headers,
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone().zip(self.client_key.clone()),
        };
        Ok(http)
    }
}

impl Queue {
    pub fn options(&self, flush_deadline: Duration) -> crate::sink::queue::QueueOptions {
        crate::sink::queue::QueueOptions {
            max_profiles: self.max_profiles,
            max_bytes: self.max_mib << 20,
            min_backoff: self.min_backoff,
            max_backoff: self.max_backoff,
            flush_deadline,
            ..Default::default()
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_key() {
        let e = AgentConfig::parse(
            "[[pyroscope]]\nurl = \"http://x:4040\"\nhttp = { timeout = \"ten seconds\" }\n",
            "agent.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("agent.toml: pyroscope[0].http.timeout: "),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let e = AgentConfig::parse("frequncy_hz = 19\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("frequncy_hz"), "{e}");
        let mut c = AgentConfig::parse("[[pyroscope]]\nurl = \"pyroscope:4040\"\n", "a").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("pyroscope[0].url: ")
        );
        c.pyroscope.clear();
        c.validate().unwrap();
    }

    #[test]
    fn secrets_are_references_and_headers_are_masked() {
        let c = AgentConfig::parse(
            "[[pyroscope]]\nurl = \"http://x:4040\"\n[pyroscope.http]\nheaders = { X-Token = \"hunter2\" }\n\
             bearer_token = { env = \"GPROF_BPF_TEST_NOT_SET\" }\n",
            "a",
        )
        .unwrap();
        assert!(!c.effective().contains("hunter2"));
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("pyroscope[0].http.bearer_token") && e.contains("not set"),
            "{e}"
        );
    }
}
