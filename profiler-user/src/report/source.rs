//! Finding and reading source files for `-list`, following pprof's rules (`trimPath`,
//! `openSourceFile`), then gprof-bpf's extra places when pprof's would fail: a GOROOT (given
//! with `--goroot`, or found as a user's machine has one) preferring the profile's Go version,
//! `$GOPATH/pkg/mod`, and path suffixes under the given source directories.

use super::graph::{go_base, go_clean};
use regex::Regex;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// pprof's `trimPath`: configured prefixes, or (without them) everything up to the base name of
/// a search-path directory; `/proc/self/cwd/` always.
pub(crate) fn trim_path(path: &str, trim: &[String], search: &[String]) -> String {
    if trim.is_empty() {
        for dir in search {
            let want = format!("/{}/", go_base(dir));
            if let Some(found) = path.find(&want) {
                return path[found + want.len()..].to_string();
            }
        }
    }
    let defaults = [
        "/proc/self/cwd/./".to_string(),
        "/proc/self/cwd/".to_string(),
    ];
    for t in trim.iter().filter(|t| !t.is_empty()).chain(defaults.iter()) {
        let t = if t.ends_with('/') {
            t.clone()
        } else {
            format!("{t}/")
        };
        if let Some(rest) = path.strip_prefix(&t) {
            return rest.to_string();
        }
    }
    path.to_string()
}

/// `filepath.Join(dir, path)`.
fn go_join(dir: &str, path: &str) -> String {
    match (dir.is_empty(), path.is_empty()) {
        (true, true) => String::new(),
        (true, false) => go_clean(path),
        (false, true) => go_clean(dir),
        (false, false) => go_clean(&format!("{dir}/{path}")),
    }
}

/// `filepath.Dir`.
fn go_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => go_clean(&p[..=i]),
        None => ".".into(),
    }
}

/// The lines of a source file as pprof's `bufio.Scanner` splits them (no `\n`, no trailing
/// `\r`; reading stops at a line too long for the scanner).
fn split_lines(data: &[u8]) -> Vec<Vec<u8>> {
    const MAX_TOKEN: usize = 64 * 1024;
    let mut lines = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.len() >= MAX_TOKEN {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        lines.push(line.to_vec());
        rest = next;
    }
    lines
}

fn read_file(path: &Path) -> Option<Vec<Vec<u8>>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut data = Vec::new();
    // A directory opens but cannot be read: like pprof, it has no lines and no error.
    if f.read_to_end(&mut data).is_err() {
        return Some(Vec::new());
    }
    Some(split_lines(&data))
}

fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches("go")
        .split(['.', '-', 'r', 'b'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// The `go` on `PATH`'s idea of its GOROOT (`go env GOROOT`), without letting it fetch a
/// toolchain a `go.mod` in the current directory might ask for.
fn go_env_goroot() -> Option<PathBuf> {
    let out = std::process::Command::new("go")
        .args(["env", "GOROOT"])
        .env("GOTOOLCHAIN", "local")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let root = String::from_utf8(out.stdout).ok()?;
    let root = root.trim();
    (out.status.success() && !root.is_empty()).then(|| PathBuf::from(root))
}

/// GOROOTs as a user's machine has them, in this order: the explicit ones (`--goroot`),
/// `$GOROOT`, `go env GOROOT` of the `go` on `PATH`, `/usr/local/go`, then Debian's
/// `/usr/lib/go-*` (newest first) and `/usr/lib/go`.
fn goroot_candidates(explicit: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = explicit.to_vec();
    out.extend(std::env::var_os("GOROOT").map(PathBuf::from));
    out.extend(go_env_goroot());
    out.push(PathBuf::from("/usr/local/go"));
    let mut debian: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let v = name.strip_prefix("go-")?;
                    Some((version_key(v), e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    debian.sort_by(|a, b| b.0.cmp(&a.0));
    out.extend(debian.into_iter().map(|(_, p)| p));
    out.push(PathBuf::from("/usr/lib/go"));
    out
}

/// The Go version of a GOROOT, from the first line of its `VERSION` file (`go1.27.3`).
fn goroot_version(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("VERSION")).ok()?;
    let first = text.lines().next()?.trim();
    Some(first.strip_prefix("go").unwrap_or(first).to_string())
}

/// GOROOT `src` directories to search for standard-library files, best first: among the
/// candidates of [`goroot_candidates`], those of the Go version named in the profile's
/// comments (`go1.x.y`: that release, then the same `1.x`), then the rest in candidate order.
fn goroot_srcs(comments: &[String], explicit: &[PathBuf]) -> Vec<PathBuf> {
    static VERSION: OnceLock<Regex> = OnceLock::new();
    let re = VERSION.get_or_init(|| Regex::new(r"\bgo(1\.\d+(?:\.\d+)?)").expect("valid regex"));
    let wanted: Vec<String> = comments
        .iter()
        .filter_map(|c| re.captures(c).map(|m| m[1].to_string()))
        .collect();
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let mut roots: Vec<(PathBuf, Option<String>)> = Vec::new();
    for root in goroot_candidates(explicit) {
        let src = root.join("src");
        if src.is_dir() && !roots.iter().any(|(r, _)| *r == src) {
            roots.push((src, goroot_version(&root)));
        }
    }
    // Rank: 0 = the exact release wanted, 1 = same minor, 2 = any other (stable sort keeps
    // the candidate order within a rank).
    let rank = |v: &Option<String>| match v {
        Some(v) if wanted.iter().any(|w| w == v) => 0,
        Some(v) if wanted.iter().any(|w| minor(w) == minor(v)) => 1,
        _ => 2,
    };
    roots.sort_by_key(|(_, v)| rank(v));
    roots.into_iter().map(|(src, _)| src).collect()
}

fn gopath_mod_dirs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    match std::env::var("GOPATH") {
        Ok(gp) if !gp.is_empty() => out.extend(
            gp.split(':')
                .filter(|p| !p.is_empty())
                .map(|p| Path::new(p).join("pkg/mod")),
        ),
        _ => {
            if let Some(home) = std::env::var_os("HOME") {
                out.push(Path::new(&home).join("go/pkg/mod"));
            }
        }
    }
    out
}

/// What a listed file must look like, to choose among candidate copies.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FileHint {
    /// Highest sampled line.
    pub max_line: i64,
    /// A function's `func` line, 0 when unknown.
    pub start_line: i64,
}

impl FileHint {
    fn plausible(&self, lines: &[Vec<u8>]) -> bool {
        let long_enough = usize::try_from(self.max_line).is_ok_and(|m| lines.len() >= m);
        let func_at_start = self.start_line <= 0
            || usize::try_from(self.start_line - 1)
                .ok()
                .and_then(|i| lines.get(i))
                .is_some_and(|l| {
                    let l = String::from_utf8_lossy(l);
                    l.contains("func") || l.contains("TEXT")
                });
        long_enough && func_at_start
    }
}

/// Reads source files for listings, caching them by the name recorded in the profile.
pub(crate) struct SourceReader {
    /// Explicit `source_paths` (pprof `-source_path`); empty means the current directory.
    explicit: Vec<String>,
    /// The effective search path (explicit, or the current directory).
    search: Vec<String>,
    trim: Vec<String>,
    comments: Vec<String>,
    goroots: Vec<PathBuf>,
    extra: Option<(Vec<PathBuf>, Vec<PathBuf>)>,
    files: HashMap<String, Result<Vec<Vec<u8>>, String>>,
}

impl SourceReader {
    pub fn new(
        source_paths: &[PathBuf],
        trim: &[String],
        comments: &[String],
        goroots: &[PathBuf],
    ) -> Self {
        let explicit: Vec<String> = source_paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let search = if explicit.is_empty() {
            vec![
                std::env::current_dir()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| ".".into()),
            ]
        } else {
            explicit.clone()
        };
        SourceReader {
            explicit,
            search,
            trim: trim.to_vec(),
            comments: comments.to_vec(),
            goroots: goroots.to_vec(),
            extra: None,
            files: HashMap::new(),
        }
    }

    /// The lines of `file` (a name as printed in the report), or pprof's error message.
    pub fn lines(&mut self, file: &str, hint: &FileHint) -> Result<&[Vec<u8>], &str> {
        if !self.files.contains_key(file) {
            let r = self.open(file, hint);
            self.files.insert(file.to_string(), r);
        }
        match &self.files[file] {
            Ok(l) => Ok(l),
            Err(e) => Err(e),
        }
    }

    fn open(&mut self, file: &str, hint: &FileHint) -> Result<Vec<Vec<u8>>, String> {
        let path = trim_path(file, &self.trim, &self.search);
        let err = if path.starts_with('/') {
            if let Some(l) = read_file(Path::new(&path)) {
                return Ok(l);
            }
            format!("open {path}: no such file or directory")
        } else {
            for dir in &self.search {
                let mut dir = dir.clone();
                loop {
                    if let Some(l) = read_file(Path::new(&go_join(&dir, &path))) {
                        return Ok(l);
                    }
                    let parent = go_dir(&dir);
                    if parent == dir {
                        break;
                    }
                    dir = parent;
                }
            }
            format!(
                "could not find file {path} on path {}",
                self.search.join(":")
            )
        };
        self.open_extra(&path, hint).ok_or(err)
    }

    /// gprof-bpf's extra search, after pprof's would have failed.
    /// Candidates are tried in order; the first plausible one (see [`FileHint`]) wins, else
    /// the first one found.
    fn open_extra(&mut self, path: &str, hint: &FileHint) -> Option<Vec<Vec<u8>>> {
        let mut first: Option<Vec<Vec<u8>>> = None;
        let mut consider = |l: Vec<Vec<u8>>| -> Option<Vec<Vec<u8>>> {
            if hint.plausible(&l) {
                return Some(l);
            }
            first.get_or_insert(l);
            None
        };
        let (goroots, mods) = self.extra.get_or_insert_with(|| {
            (
                goroot_srcs(&self.comments, &self.goroots),
                gopath_mod_dirs(),
            )
        });
        let mut rels: Vec<(String, bool)> = Vec::new(); // (relative name, is a module path)
        if let Some(rel) = path.strip_prefix('/') {
            // Absolute names from another machine: the part after `/src/` may be a standard
            // library file, the part after `/pkg/mod/` a module file.
            for (i, _) in rel.match_indices("/src/") {
                rels.push((rel[i + 5..].to_string(), false));
            }
            if let Some(i) = rel.find("/pkg/mod/") {
                rels.push((rel[i + 9..].to_string(), true));
            }
        } else {
            rels.push((path.to_string(), false));
            rels.push((path.to_string(), true));
        }
        for (rel, module) in &rels {
            let dirs = if *module { &*mods } else { &*goroots };
            for d in dirs {
                if let Some(l) = read_file(&d.join(rel)).and_then(&mut consider) {
                    return Some(l);
                }
            }
        }
        // Shorter and shorter suffixes under the explicit source directories (a module path
        // like `example.com/m/x.go` found as `<dir>/x.go`).
        let clean = path.trim_start_matches('/');
        let parts: Vec<&str> = clean.split('/').collect();
        for start in 1..parts.len() {
            let suffix = parts[start..].join("/");
            for dir in &self.explicit {
                if let Some(l) = read_file(&Path::new(dir).join(&suffix)).and_then(&mut consider) {
                    return Some(l);
                }
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pprof_trim_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            trim_path("/build/proj/foo/bar.go", &[], &s(&["/home/me/proj"])),
            "foo/bar.go"
        );
        assert_eq!(
            trim_path(
                "/build/proj/foo/bar.go",
                &s(&["/build"]),
                &s(&["/home/me/proj"])
            ),
            "proj/foo/bar.go"
        );
        assert_eq!(trim_path("/proc/self/cwd/x.go", &[], &[]), "x.go");
        assert_eq!(trim_path("/a/b.go", &[], &[]), "/a/b.go");
        assert_eq!(go_join("/a/b", "../c.go"), "/a/c.go");
        assert_eq!(go_dir("/a/b"), "/a");
        assert_eq!(go_dir("/a"), "/");
        assert_eq!(go_dir("/"), "/");
    }

    #[test]
    fn scanner_lines() {
        assert_eq!(
            split_lines(b"a\r\nb\n\nc"),
            vec![b"a".to_vec(), b"b".to_vec(), b"".to_vec(), b"c".to_vec()]
        );
        assert_eq!(split_lines(b"a\n"), vec![b"a".to_vec()]);
        assert!(split_lines(b"").is_empty());
    }

    #[test]
    fn finds_relative_names_under_ancestors_and_suffixes() {
        let dir = std::env::temp_dir().join(format!("gprof-src-{}", std::process::id()));
        let sub = dir.join("deep/er");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir_all(dir.join("example.com/m")).unwrap();
        std::fs::write(dir.join("example.com/m/x.go"), "package m\n").unwrap();
        std::fs::write(dir.join("y.go"), "package y\n").unwrap();
        let mut r = SourceReader::new(std::slice::from_ref(&sub), &[], &[], &[]);
        assert_eq!(
            r.lines("example.com/m/x.go", &FileHint::default()).unwrap(),
            &[b"package m".to_vec()]
        );
        let mut r = SourceReader::new(std::slice::from_ref(&dir), &[], &[], &[]);
        assert_eq!(
            r.lines("other.org/z/y.go", &FileHint::default()).unwrap(),
            &[b"package y".to_vec()]
        );
        let e = r
            .lines("nope/none.go", &FileHint::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("could not find file nope/none.go on path {}", dir.display())
        );
        // Among several candidates the plausible one wins (long enough, `func` at the start).
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("z.go"), "package z\n").unwrap();
        std::fs::write(b.join("z.go"), "package z\n\nfunc Z() {\n}\n").unwrap();
        let mut r = SourceReader::new(&[a.clone(), b.clone()], &[], &[], &[]);
        let hint = FileHint {
            max_line: 4,
            start_line: 3,
        };
        assert_eq!(r.lines("m/z.go", &hint).unwrap().len(), 4);
        let mut r = SourceReader::new(&[a.clone(), b.clone()], &[], &[], &[]);
        let hint = FileHint {
            max_line: 40,
            start_line: 0,
        };
        assert_eq!(
            r.lines("m/z.go", &hint).unwrap().len(),
            1,
            "none plausible: the first found"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn goroot_of_the_profiles_version_wins() {
        let dir = std::env::temp_dir().join(format!("gprof-goroot-{}", std::process::id()));
        let root = |name: &str, version: &str| {
            let r = dir.join(name);
            std::fs::create_dir_all(r.join("src/runtime")).unwrap();
            std::fs::write(r.join("VERSION"), format!("go{version}\ntime x\n")).unwrap();
            std::fs::write(r.join("src/runtime/v.go"), format!("{version}\n")).unwrap();
            r
        };
        let roots = [
            root("a", "1.26.8"),
            root("b", "1.22.10"),
            root("c", "1.22.3"),
        ];
        let first_line = |comments: &[String]| {
            let mut r = SourceReader::new(&[dir.join("none")], &[], comments, &roots);
            let l = r.lines("runtime/v.go", &FileHint::default()).unwrap();
            String::from_utf8(l[0].clone()).unwrap()
        };
        assert_eq!(first_line(&["prog: go1.22.10".into()]), "1.22.10");
        assert_eq!(
            first_line(&["prog: go1.22.7".into()]),
            "1.22.10",
            "same minor"
        );
        assert_eq!(first_line(&["prog: go1.22.3".into()]), "1.22.3");
        assert_eq!(first_line(&[]), "1.26.8", "no version: the first given");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
