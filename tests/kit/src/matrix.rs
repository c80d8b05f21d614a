//! The build matrix of the Go fixtures: how a fixture is linked, stripped and trimmed, as
//! `go build` arguments. Shared by the integration tests and profiler-user's unit tests.

use crate::go;
use anyhow::{Context as _, Result};
use std::path::PathBuf;

/// Environment variables for `go build`.
pub type GoEnv = Vec<(String, String)>;

/// How the fixture is linked (one column of the matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Internal linker, static non-PIE (CGO_ENABLED=0).
    Internal,
    /// `-buildmode=pie`, internal linker (CGO_ENABLED=0).
    Pie,
    /// cgo, `-linkmode=external` through gcc + GNU ld.
    External,
    /// cgo, `-buildmode=pie -linkmode=external` through gcc + GNU ld.
    PieExternal,
    /// cgo, `-buildmode=pie -linkmode=external` through gcc + lld (`ld.lld`).
    PieLld,
}

impl Link {
    pub const ALL: [Link; 5] = [
        Link::Internal,
        Link::Pie,
        Link::External,
        Link::PieExternal,
        Link::PieLld,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Link::Internal => "default",
            Link::Pie => "pie",
            Link::External => "ext",
            Link::PieExternal => "pie-ext",
            Link::PieLld => "pie-lld",
        }
    }

    pub fn cgo(self) -> bool {
        matches!(self, Link::External | Link::PieExternal | Link::PieLld)
    }
}

/// One cell of the build matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    pub version: String,
    pub goarch: &'static str,
    pub link: Link,
    /// `-ldflags=-s -w`.
    pub strip: bool,
    pub trimpath: bool,
}

impl Build {
    pub fn new(
        version: &str,
        goarch: &'static str,
        link: Link,
        strip: bool,
        trimpath: bool,
    ) -> Build {
        Build {
            version: version.to_string(),
            goarch,
            link,
            strip,
            trimpath,
        }
    }

    /// Short column name, e.g. `pie-lld+strip+trim`.
    pub fn mode(&self) -> String {
        let mut s = self.link.name().to_string();
        if self.strip {
            s.push_str("+strip");
        }
        if self.trimpath {
            s.push_str("+trim");
        }
        s
    }

    pub fn label(&self) -> String {
        format!("go{} {} {}", self.version, self.goarch, self.mode())
    }

    /// The same build without `-s -w`: where the tests take symbol addresses from.
    pub fn unstripped(&self) -> Build {
        Build {
            strip: false,
            ..self.clone()
        }
    }

    /// `go build` arguments and environment, as given to [`go::build`]; an error when a needed
    /// linker is missing.
    pub fn go_args(&self) -> Result<(Vec<String>, GoEnv)> {
        let mut args = Vec::new();
        let mut ldflags: Vec<String> = Vec::new();
        let mut env = vec![("GOARCH".to_string(), self.goarch.to_string())];
        if self.trimpath {
            args.push("-trimpath".to_string());
        }
        match self.link {
            Link::Internal => {}
            Link::Pie => args.push("-buildmode=pie".into()),
            Link::External => ldflags.push("-linkmode=external".into()),
            Link::PieExternal => {
                args.push("-buildmode=pie".into());
                ldflags.push("-linkmode=external".into());
            }
            Link::PieLld => {
                args.push("-buildmode=pie".into());
                ldflags.push("-linkmode=external".into());
                // gcc -fuse-ld=lld looks for `ld.lld` in its -B prefixes: Debian installs only
                // ld.lld-NN on PATH.
                let dir = lld_dir()?;
                ldflags.push(format!("'-extldflags=-fuse-ld=lld -B{}/'", dir.display()));
            }
        }
        if self.strip {
            ldflags.push("-s".into());
            ldflags.push("-w".into());
        }
        if !ldflags.is_empty() {
            args.push(format!("-ldflags={}", ldflags.join(" ")));
        }
        env.push((
            "CGO_ENABLED".into(),
            if self.link.cgo() { "1" } else { "0" }.into(),
        ));
        Ok((args, env))
    }

    /// Builds fixture `name` in this configuration (cached by [`go::build`]).
    pub fn build(&self, name: &str) -> Result<PathBuf> {
        let (args, env) = self.go_args()?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        go::build(name, &self.version, &args, &env)
            .with_context(|| format!("building {name} ({})", self.label()))
    }
}

/// A directory holding an `ld.lld` symlink to the installed lld (`ld.lld-NN` on Debian).
pub fn lld_dir() -> Result<PathBuf> {
    let dir = go::target_dir().join("lld-bin");
    let link = dir.join("ld.lld");
    if link.exists() {
        return Ok(dir);
    }
    let found = [
        "ld.lld",
        "ld.lld-22",
        "ld.lld-21",
        "ld.lld-20",
        "ld.lld-19",
        "ld.lld-18",
    ]
    .iter()
    .find_map(|n| which(n))
    .context("no ld.lld found: install lld")?;
    std::fs::create_dir_all(&dir)?;
    match std::os::unix::fs::symlink(&found, &link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    Ok(dir)
}

/// First executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The first installed `llvm-symbolizer` (versioned Debian names first, newest first).
pub fn llvm_symbolizer() -> Option<PathBuf> {
    [
        "llvm-symbolizer-22",
        "llvm-symbolizer-21",
        "llvm-symbolizer-20",
        "llvm-symbolizer-19",
        "llvm-symbolizer",
    ]
    .iter()
    .find_map(|n| which(n))
}

/// Whether a test checks the builds of Go `version` (one of `versions`, oldest first) in
/// `link` mode. Cold fixture builds are most of the suite's time, so the suite checks a
/// covering subset: every version internally linked, and every link mode on the oldest and
/// the newest version (where the formats differ most). `GPROF_MATRIX_FULL=1` (`cargo xtask
/// bench matrix`) checks every cell.
pub fn in_suite(versions: &[&str], version: &str, link: Link) -> bool {
    full_matrix()
        || versions.first() == Some(&version)
        || versions.last() == Some(&version)
        || link == Link::Internal
}

/// `GPROF_MATRIX_FULL=1`: every cell of every build matrix.
pub fn full_matrix() -> bool {
    std::env::var("GPROF_MATRIX_FULL").is_ok_and(|v| v == "1")
}
