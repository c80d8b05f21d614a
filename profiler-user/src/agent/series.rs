//! Which series a process belongs to: the selection (include/exclude), the service name and
//! the series labels, then the relabel rules. A [`Splitter`] for the pipeline.
//!
//! `service_name`, first that applies: `kernel` for kernel threads, the process's `OTEL_SERVICE_NAME` /
//! `PYROSCOPE_SERVICE_NAME` (opt-in), the Go main module path from its build info
//! (`github.com/acme/billing`), its systemd unit (`billing.service`), its container id (12
//! digits), its executable's name, its command name.
//!
//! Labels: `host_name`, `container_id`, `pod_uid`, `systemd_unit`, `go_version`, `build_id`
//! (when known and enabled) and the static external labels. No pid: it is a sample label.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;

use super::cgroup;
use super::config::{AgentConfig, RelabelAction, Selector};
use crate::pipeline::Splitter;
use crate::pipeline::window::TargetMeta;
use crate::sink::Series;

struct Matcher {
    exe: GlobSet,
    comm: Vec<Regex>,
    cgroup: Vec<String>,
    container_id: Vec<String>,
}

impl Matcher {
    fn new(s: &Selector) -> Matcher {
        let mut exe = GlobSetBuilder::new();
        for g in &s.exe {
            if let Ok(g) = Glob::new(g) {
                exe.add(g);
            }
        }
        Matcher {
            exe: exe.build().unwrap_or_else(|_| GlobSet::empty()),
            comm: s.comm.iter().filter_map(|r| Regex::new(r).ok()).collect(),
            cgroup: s.cgroup.clone(),
            container_id: s.container_id.clone(),
        }
    }

    fn matches(&self, t: &TargetMeta, container: Option<&str>) -> bool {
        self.exe.is_match(&t.exe)
            || t.comm
                .as_deref()
                .is_some_and(|c| self.comm.iter().any(|r| r.is_match(c)))
            || self.cgroup.iter().any(|p| t.cgroup.starts_with(p.as_str()))
            || container
                .is_some_and(|c| self.container_id.iter().any(|p| c.starts_with(p.as_str())))
    }
}

struct Rule {
    action: RelabelAction,
    sources: Vec<String>,
    separator: String,
    regex: Regex,
    target: String,
    replacement: String,
}

pub struct SeriesNamer {
    include: Option<Matcher>,
    exclude: Matcher,
    go_only: bool,
    host_name: String,
    external: BTreeMap<String, String>,
    go_version: bool,
    build_id: bool,
    rules: Vec<Rule>,
}

/// This host's name (`/proc/sys/kernel/hostname`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl SeriesNamer {
    /// From a validated configuration.
    pub fn new(c: &AgentConfig) -> SeriesNamer {
        SeriesNamer {
            include: (!c.select.include.is_empty()).then(|| Matcher::new(&c.select.include)),
            exclude: Matcher::new(&c.select.exclude),
            go_only: c.select.go_only,
            host_name: if c.labels.host_name.is_empty() {
                host_name()
            } else {
                c.labels.host_name.clone()
            },
            external: c.labels.external.clone(),
            go_version: c.labels.go_version,
            build_id: c.labels.build_id,
            rules: c
                .relabel
                .iter()
                .filter_map(|r| {
                    Some(Rule {
                        action: r.action,
                        sources: r.source_labels.clone(),
                        separator: r.separator.clone(),
                        regex: Regex::new(&format!("^(?:{})$", r.regex)).ok()?,
                        target: r.target_label.clone(),
                        replacement: r.replacement.clone(),
                    })
                })
                .collect(),
        }
    }

    /// The labels of a series before relabelling, `service_name` included.
    pub fn labels(&self, t: &TargetMeta) -> BTreeMap<String, String> {
        let cg = cgroup::parse(&t.cgroup);
        let build = t.build.as_ref();
        let module = build
            .and_then(|b| b.module_path.clone())
            .filter(|m| !m.is_empty() && m != "command-line-arguments");
        let exe_name = t
            .exe
            .trim_end_matches(" (deleted)")
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        // Kernel threads are one service: their names (kworker/1:2H-...) come and go.
        let kernel = t.kernel_thread.then(|| "kernel".to_string());
        let service = kernel
            .or_else(|| t.service_env.clone())
            .or(module)
            .or_else(|| cg.systemd_unit.clone())
            .or_else(|| cg.container_id.as_ref().map(|c| c[..12].to_string()))
            .or(exe_name)
            .or_else(|| t.comm.clone())
            .unwrap_or_else(|| "unknown".into());
        let mut l = BTreeMap::new();
        l.insert("service_name".to_string(), service);
        if !self.host_name.is_empty() {
            l.insert("host_name".into(), self.host_name.clone());
        }
        if let Some(c) = cg.container_id {
            l.insert("container_id".into(), c);
        }
        if let Some(p) = cg.pod_uid {
            l.insert("pod_uid".into(), p);
        }
        if let Some(u) = cg.systemd_unit {
            l.insert("systemd_unit".into(), u);
        }
        if self.go_version
            && let Some(v) = build.and_then(|b| b.go_version.clone())
        {
            l.insert("go_version".into(), v);
        }
        if self.build_id
            && let Some(id) = build.and_then(|b| b.gnu_build_id.clone().or(b.go_build_id.clone()))
        {
            l.insert("build_id".into(), id);
        }
        for (k, v) in &self.external {
            l.insert(k.clone(), v.clone());
        }
        l
    }

    fn selected(&self, t: &TargetMeta) -> bool {
        if self.go_only && t.build.as_ref().is_none_or(|b| b.go_version.is_none()) {
            return false;
        }
        let container = cgroup::parse(&t.cgroup).container_id;
        if self.exclude.matches(t, container.as_deref()) {
            return false;
        }
        self.include
            .as_ref()
            .is_none_or(|m| m.matches(t, container.as_deref()))
    }

    /// Applies the relabel rules; None when a rule drops the series.
    fn relabel(&self, mut l: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
        for r in &self.rules {
            let joined: Vec<&str> = r
                .sources
                .iter()
                .map(|s| l.get(s).map_or("", String::as_str))
                .collect();
            let joined = joined.join(&r.separator);
            match r.action {
                RelabelAction::Keep if !r.regex.is_match(&joined) => return None,
                RelabelAction::Drop if r.regex.is_match(&joined) => return None,
                RelabelAction::Replace => {
                    if let Some(c) = r.regex.captures(&joined) {
                        let mut v = String::new();
                        c.expand(&r.replacement, &mut v);
                        if v.is_empty() {
                            l.remove(&r.target);
                        } else {
                            l.insert(r.target.clone(), v);
                        }
                    }
                }
                RelabelAction::LabelDrop => l.retain(|k, _| !r.regex.is_match(k)),
                _ => {}
            }
        }
        Some(l)
    }
}

impl Splitter for SeriesNamer {
    fn series(&mut self, t: &TargetMeta) -> Option<Series> {
        if !self.selected(t) {
            return None;
        }
        let mut labels = self.relabel(self.labels(t))?;
        let service = labels
            .remove("service_name")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Some(Series { service, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::buildinfo::BuildInfo;

    fn target(exe: &str, cgroup: &str, module: Option<&str>) -> TargetMeta {
        TargetMeta {
            pid: 42,
            comm: Some("billing".into()),
            exe: exe.into(),
            cgroup: cgroup.into(),
            build: module.map(|m| BuildInfo {
                go_version: Some("go1.27.3".into()),
                module_path: Some(m.into()),
                gnu_build_id: Some("abcd".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn config(toml: &str) -> AgentConfig {
        let mut c = AgentConfig::parse(toml, "test").unwrap();
        c.labels.host_name = "h1".into();
        c.validate().unwrap();
        c
    }

    #[test]
    fn service_names_follow_the_rules_in_order() {
        let mut n = SeriesNamer::new(&config(""));
        let go = target(
            "/srv/billing",
            "/system.slice/billing.service",
            Some("github.com/acme/billing"),
        );
        let s = n.series(&go).unwrap();
        assert_eq!(s.service, "github.com/acme/billing");
        assert_eq!(s.labels["systemd_unit"], "billing.service");
        assert_eq!(s.labels["go_version"], "go1.27.3");
        assert_eq!(s.labels["host_name"], "h1");
        assert!(!s.labels.contains_key("pid"));
        let c = target("/usr/bin/cc1", "/system.slice/build.service", None);
        assert_eq!(n.series(&c).unwrap().service, "build.service");
        let bare = target("/usr/bin/cc1", "/user.slice", None);
        assert_eq!(n.series(&bare).unwrap().service, "cc1");
        let mut env = go.clone();
        env.service_env = Some("billing-api".into());
        assert_eq!(n.series(&env).unwrap().service, "billing-api");
    }

    #[test]
    fn selection_and_relabelling() {
        let mut n = SeriesNamer::new(&config(
            "[select]\ngo_only = true\n[select.exclude]\ncomm = [\"^test\"]\n\
             [[relabel]]\nsource_labels = [\"systemd_unit\"]\nregex = \"(.*)\\\\.service\"\n\
             target_label = \"unit\"\n\
             [[relabel]]\naction = \"labeldrop\"\nregex = \"build_id\"\n",
        ));
        let go = target(
            "/srv/billing",
            "/system.slice/billing.service",
            Some("github.com/acme/billing"),
        );
        let s = n.series(&go).unwrap();
        assert_eq!(s.labels["unit"], "billing");
        assert!(!s.labels.contains_key("build_id"));
        assert!(
            n.series(&target("/usr/bin/cc1", "/", None)).is_none(),
            "go_only"
        );
        let mut t = go.clone();
        t.comm = Some("testing".into());
        assert!(n.series(&t).is_none(), "excluded by comm");
    }
}
