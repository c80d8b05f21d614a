//! `gprof-bpf agent`: the streaming pipeline run for days over every process of the host,
//! one profile per service per window, shipped to every configured sink (Pyroscope, a
//! directory), with self-metrics on loopback. SIGTERM stops sampling and flushes the queues
//! within `shutdown_timeout`; SIGHUP re-reads the configuration file and, if it is valid,
//! restarts the pipeline with it (an invalid one is logged and ignored).

pub mod cgroup;
pub mod config;
pub mod http;
pub mod metrics;
pub mod series;

use std::path::PathBuf;

use config::{AgentConfig, ConfigError};

use crate::pipeline::budget::CpuBudget;
use crate::pipeline::{Pipeline, PipelineError, PipelineOptions, RunUntilStopped};
use crate::sampler::{Sampler, SamplerError, SamplerOptions};
use crate::sink::dir::{DirCaps, DirSink};
use crate::sink::otlp::OtlpOptions;
use crate::sink::pyroscope::PyroscopeOptions;
use crate::sink::{Sink, SinkError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("sink: {0}")]
    Sink(#[from] SinkError),
    #[error("http.listen {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("the pipeline thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How one run of the pipeline ended.
enum Ended {
    Stopped,
    Reload(Box<AgentConfig>),
}

/// Runs the agent until SIGTERM or SIGINT. `file` is re-read on SIGHUP; `overlay` applies the
/// command line's settings on top of it (flags win over the file).
pub async fn run(
    mut config: AgentConfig,
    file: Option<PathBuf>,
    overlay: &(dyn Fn(&mut AgentConfig) + Sync),
) -> Result<(), AgentError> {
    crate::sampler::check_privileges()?;
    for c in crate::sampler::missing_agent_capabilities() {
        log::warn!("missing {c}: some processes will lack names or metadata");
    }
    loop {
        match run_once(&config, file.as_deref()).await? {
            Ended::Stopped => return Ok(()),
            Ended::Reload(mut next) => {
                overlay(&mut next);
                match next.validate() {
                    Ok(()) => {
                        log::info!("configuration reloaded");
                        config = *next;
                    }
                    Err(e) => log::error!("reload refused, keeping the running configuration: {e}"),
                }
            }
        }
    }
}

fn sinks(c: &AgentConfig) -> Result<(Vec<Box<dyn Sink>>, metrics::NamedStats), AgentError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut stats = Vec::new();
    for (i, p) in c.pyroscope.iter().enumerate() {
        let key = format!("pyroscope[{i}]");
        let http = p.http.resolve(&format!("{key}.http"))?;
        let queue = p.queue.options(c.shutdown_timeout);
        let name = if c.pyroscope.len() == 1 {
            "pyroscope".to_string()
        } else {
            key
        };
        let sink = crate::sink::pyroscope::sink(
            &name,
            PyroscopeOptions {
                url: p.url.clone(),
                api: p.api,
                tenant: p.tenant.clone(),
                http,
                queue,
                frequency_hz: c.frequency_hz,
            },
        )?;
        stats.push((name, sink.stats()));
        sinks.push(Box::new(sink));
    }
    for (i, o) in c.otlp.iter().enumerate() {
        let key = format!("otlp[{i}]");
        let http = o.http.resolve(&format!("{key}.http"))?;
        let name = if c.otlp.len() == 1 {
            "otlp".to_string()
        } else {
            key
        };
        let sink = crate::sink::otlp::sink(
            &name,
            OtlpOptions {
                endpoint: o.endpoint.clone(),
                protocol: o.protocol,
                dev_version: o.development_version,
                http,
                queue: o.queue.options(c.shutdown_timeout),
            },
        )?;
        stats.push((name, sink.stats()));
        sinks.push(Box::new(sink));
    }
    for d in &c.directory {
        sinks.push(Box::new(DirSink::with_caps(
            d.path.clone(),
            DirCaps {
                max_bytes: d.max_mib.map(|m| m << 20),
                max_age: d.max_age,
            },
        )?));
    }
    Ok((sinks, stats))
}

async fn run_once(c: &AgentConfig, file: Option<&std::path::Path>) -> Result<Ended, AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (sinks, sink_stats) = sinks(c)?;
    if sinks.is_empty() {
        log::warn!(
            "no sink configured: profiles are made and dropped (see --pyroscope, --otlp, --directory)"
        );
    }
    let sampler = Sampler::start(&SamplerOptions {
        frequency_hz: c.frequency_hz,
        all_processes: true,
        follow_children: false,
        threads: false,
        goroutines: false,
        goroutine_data: true,
        jitter: true,
        drain_interval: std::time::Duration::from_secs(1),
    })?;
    let mut pipeline = Pipeline::new(
        PipelineOptions {
            memory_limit: (c.limits.memory_mib > 0).then_some(c.limits.memory_mib << 20),
            frequency_hz: c.frequency_hz,
            window: Some(c.window),
            keep_total: false,
        },
        sinks,
    );
    pipeline.registry.read_service_env = c.labels.service_from_env;
    if c.limits.cpu_percent > 0.0 {
        pipeline.set_cpu_budget(CpuBudget::new(
            c.limits.cpu_percent / 100.0,
            c.frequency_hz,
            sampler.rate_handle(),
        ));
    }
    pipeline.set_splitter(Box::new(series::SeriesNamer::new(c)));
    let taps = pipeline.taps();
    let sources = metrics::Sources {
        pipeline: pipeline.share_stats(),
        sampler: sampler.drops.clone(),
        sinks: sink_stats,
    };
    let server = if c.http.listen.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&c.http.listen)
            .await
            .map_err(|error| AgentError::Listen {
                addr: c.http.listen.clone(),
                error,
            })?;
        let state = http::State {
            sources,
            taps,
            config: std::sync::Arc::new(c.clone()),
            token: c.http.token.read("http.token")?,
        };
        log::info!(
            "serving /metrics, /healthz and /debug/pprof/profile on http://{}",
            listener
                .local_addr()
                .map_or(c.http.listen.clone(), |a| a.to_string())
        );
        Some(tokio::spawn(http::serve(listener, state)))
    };
    log::info!(
        "profiling every process at {} Hz per CPU on {} CPUs, {}s windows",
        c.frequency_hz,
        sampler.cpus.len(),
        c.window.as_secs_f64()
    );
    let stopper = sampler.stopper();
    let mut work = tokio::task::spawn_blocking(move || {
        let r = pipeline.run(&sampler, &mut RunUntilStopped);
        drop(sampler);
        r
    });
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let ended = loop {
        tokio::select! {
            _ = term.recv() => break Ended::Stopped,
            _ = int.recv() => break Ended::Stopped,
            _ = hup.recv() => {
                let Some(f) = file else {
                    log::warn!("SIGHUP: no configuration file to reload");
                    continue;
                };
                match AgentConfig::load(f) {
                    Ok(next) => break Ended::Reload(Box::new(next)),
                    Err(e) => log::error!("reload refused, keeping the running configuration: {e}"),
                }
            }
            r = &mut work => {
                // The pipeline ended by itself: an error.
                r??;
                break Ended::Stopped;
            }
        }
    };
    log::info!(
        "stopping: flushing the sinks (up to {}s)",
        c.shutdown_timeout.as_secs_f64()
    );
    stopper.stop();
    if !work.is_finished() {
        work.await??;
    }
    if let Some(s) = server {
        // Wait until the task is gone and its listener closed: a reload binds the address
        // again at once.
        s.abort();
        let _ = s.await;
    }
    Ok(ended)
}
