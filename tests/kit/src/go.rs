//! Go toolchains (installed by scripts/setup.sh under `$GPROF_GO_ROOTS`, default
//! /opt/gprof-bpf/go: the one place that knows) and cached builds of the fixture programs in
//! `tests/fixtures/go/`.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every toolchain of the fixture matrix, oldest first.
pub const MATRIX_VERSIONS: &[&str] = &[
    "1.19", "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// Directory holding one GOROOT per version (see scripts/setup.sh).
pub fn roots_dir() -> PathBuf {
    std::env::var_os("GPROF_GO_ROOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/gprof-bpf/go"))
}

/// GOROOT of `version`, if installed.
pub fn goroot(version: &str) -> Option<PathBuf> {
    let root = roots_dir().join(version);
    root.join("bin/go").exists().then_some(root)
}

/// The newest installed toolchain.
pub fn newest() -> Result<String> {
    MATRIX_VERSIONS
        .iter()
        .rev()
        .find(|v| goroot(v).is_some())
        .map(|v| v.to_string())
        .context("no Go toolchain installed: run scripts/setup.sh")
}

/// The installed subset of `versions`; every missing one is a [`crate::skip`] (a failure under
/// strict mode).
pub fn installed<'a>(versions: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for v in versions {
        if goroot(v).is_some() {
            out.push(*v);
        } else {
            crate::skip(format!(
                "Go {v} is not installed under {} (run scripts/setup.sh)",
                roots_dir().display()
            ));
        }
    }
    out
}

/// Path of the repository's `tests/fixtures/go/<name>` directory.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/go")
        .join(name)
}

/// A `go` command for `version` with a clean, offline, reproducible environment.
pub fn go_command(version: &str) -> Result<Command> {
    let root = goroot(version)
        .with_context(|| format!("Go {version} not installed: run scripts/setup.sh"))?;
    let mut cmd = Command::new(root.join("bin/go"));
    let cache = target_dir().join("go-cache");
    cmd.env("GOROOT", &root)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", cache.join("build").join(version))
        .env("GOPATH", cache.join("gopath"))
        .env("GO111MODULE", "on")
        .env(
            "PATH",
            format!(
                "{}:{}",
                root.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    Ok(cmd)
}

/// The cargo target directory (fixtures and Go caches live under it).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Builds fixture `name` with Go `version` and extra `go build` arguments (e.g.
/// `["-trimpath", "-buildmode=pie"]`), plus extra environment (e.g. `CGO_ENABLED=1`).
/// Builds are cached by their parameters and rebuilt when a source file is newer.
pub fn build(name: &str, version: &str, args: &[&str], env: &[(&str, &str)]) -> Result<PathBuf> {
    build_dir(&fixture_dir(name), name, version, args, env)
}

/// [`build`] for a Go main package in any directory `src`, cached under the name `name`.
pub fn build_dir(
    src: &Path,
    name: &str,
    version: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<PathBuf> {
    let mut tag = format!("{name}-{version}");
    let env_words = env.iter().map(|(k, v)| format!("{k}={v}"));
    for a in args.iter().map(|a| a.to_string()).chain(env_words) {
        tag.push('_');
        tag.extend(a.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        }));
    }
    let out_dir = target_dir().join("go-fixtures");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(tag);
    let newest_src = newest_mtime(src)?;
    if std::fs::metadata(&out)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= newest_src)
    {
        return Ok(out);
    }
    let mut cmd = go_command(version)?;
    cmd.current_dir(src)
        .arg("build")
        .arg("-o")
        .arg(&out)
        .args(args);
    if !env.iter().any(|(k, _)| *k == "CGO_ENABLED") {
        cmd.env("CGO_ENABLED", "0");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd
        .output()
        .with_context(|| format!("running go build for {name}"))?;
    if !output.status.success() {
        bail!(
            "go {version} build {name} {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(out)
}

fn newest_mtime(dir: &Path) -> Result<std::time::SystemTime> {
    let mut newest = std::time::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let m = entry.metadata()?.modified()?;
        newest = newest.max(m);
    }
    Ok(newest)
}
