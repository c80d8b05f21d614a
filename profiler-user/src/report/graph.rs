//! The call graph pprof builds before printing a report (`internal/graph`), reduced to what
//! `-top` and `-list` need: one node per (function) or per (function, file, line), flat and cum
//! per node, and edges marked inline when the callee was inlined into the caller.

use crate::profile::Profile;
use std::collections::{HashMap, HashSet};

/// How locations are turned into nodes (pprof's granularity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Granularity {
    /// `-top`: one node per function name.
    Functions,
    /// `-list`: one node per function, file and line; object names kept.
    Lines,
}

/// pprof's `graph.NodeInfo` (address and column are always zero in the reports we render).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NodeInfo {
    pub name: String,
    pub file: String,
    pub start_line: i64,
    pub lineno: i64,
    pub objfile: String,
}

impl NodeInfo {
    /// `NodeInfo.PrintableName`.
    pub fn printable_name(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.name.is_empty() {
            parts.push(self.name.clone());
        }
        if self.lineno != 0 {
            parts.push(format!("{}:{}", self.file, self.lineno));
        } else if !self.file.is_empty() {
            parts.push(self.file.clone());
        } else if !self.name.is_empty() {
        } else if !self.objfile.is_empty() {
            parts.push(format!("[{}]", go_base(&self.objfile)));
        } else {
            parts.push("<unknown>".into());
        }
        parts.join(" ")
    }

    /// `fmt.Sprint(info)`, pprof's last-resort tie breaker.
    pub fn sprint(&self) -> String {
        format!(
            "{{{}  0 {} {} {} 0 {}}}",
            self.name, self.file, self.start_line, self.lineno, self.objfile
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub info: NodeInfo,
    pub flat: i64,
    pub cum: i64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub weight: i64,
    pub inline: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Graph {
    /// Nodes with a non-zero flat or cum value.
    pub nodes: Vec<Node>,
    /// `(caller, callee)` indexes into `nodes`.
    pub edges: HashMap<(usize, usize), Edge>,
}

/// Options of one graph build.
pub(crate) struct GraphOptions<'a> {
    pub granularity: Granularity,
    /// `-noinlines`: keep only the outermost (physical) function of each location.
    pub noinlines: bool,
    /// Index of the sample value to use.
    pub value_index: usize,
    /// Rewrites a function's file name (pprof's `trimPath` heuristic) before cleaning it.
    pub file_name: &'a dyn Fn(&str) -> String,
    /// Only nodes in this set are kept (the others become gaps in the stacks).
    pub kept: Option<&'a HashSet<NodeInfo>>,
}

/// `filepath.Base`.
pub(crate) fn go_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// `filepath.Clean` (Unix).
pub(crate) fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Total of the chosen value over all samples (`computeTotal`: sum of absolute values).
pub(crate) fn total(profile: &Profile, value_index: usize) -> i64 {
    profile
        .samples
        .iter()
        .map(|s| {
            s.values
                .get(value_index)
                .copied()
                .unwrap_or(0)
                .wrapping_abs()
        })
        .fold(0i64, i64::wrapping_add)
}

pub(crate) fn build(profile: &Profile, o: &GraphOptions) -> Graph {
    let mut index: HashMap<NodeInfo, usize> = HashMap::new();
    let mut all: Vec<Node> = Vec::new();
    let mut file_names: HashMap<u64, String> = HashMap::new();
    // Node indexes of each location's lines, innermost first (None: not kept).
    let mut loc_nodes: Vec<Vec<Option<usize>>> = Vec::with_capacity(profile.locations.len());
    for loc in &profile.locations {
        let objfile = profile
            .mapping(loc.mapping_id)
            .map(|m| m.file.clone())
            .unwrap_or_default();
        let mut lines: Vec<Option<&crate::profile::Line>> = loc.lines.iter().map(Some).collect();
        if o.noinlines && lines.len() > 1 {
            lines.drain(..lines.len() - 1);
        }
        if lines.is_empty() {
            lines.push(None);
        }
        let mut nodes = Vec::with_capacity(lines.len());
        for line in lines {
            let func = line.and_then(|l| {
                l.function_id
                    .checked_sub(1)
                    .and_then(|i| profile.functions.get(i as usize))
                    .map(|f| (l, f))
            });
            let info = match func {
                None => NodeInfo {
                    name: String::new(),
                    file: String::new(),
                    start_line: 0,
                    lineno: 0,
                    objfile: objfile.clone(),
                },
                Some((l, f)) => {
                    let mut info = NodeInfo {
                        name: f.name.clone(),
                        file: String::new(),
                        start_line: 0,
                        lineno: 0,
                        objfile: String::new(),
                    };
                    let obj_names = o.granularity == Granularity::Lines;
                    if obj_names {
                        info.lineno = l.line;
                        let file = file_names
                            .entry(l.function_id)
                            .or_insert_with(|| {
                                let t = (o.file_name)(&f.filename);
                                if t.is_empty() { t } else { go_clean(&t) }
                            })
                            .clone();
                        info.file = file;
                    }
                    if obj_names || info.name.is_empty() {
                        info.objfile = objfile.clone();
                        info.start_line = f.start_line;
                    }
                    info
                }
            };
            if o.kept.is_some_and(|k| !k.contains(&info)) {
                nodes.push(None);
                continue;
            }
            let n = *index.entry(info.clone()).or_insert_with(|| {
                all.push(Node {
                    info,
                    flat: 0,
                    cum: 0,
                });
                all.len() - 1
            });
            nodes.push(Some(n));
        }
        loc_nodes.push(nodes);
    }

    let mut edges: HashMap<(usize, usize), Edge> = HashMap::new();
    let mut seen_node: HashSet<usize> = HashSet::new();
    let mut seen_edge: HashSet<(usize, usize)> = HashSet::new();
    for s in &profile.samples {
        let w = s.values.get(o.value_index).copied().unwrap_or(0);
        if w == 0 {
            continue;
        }
        seen_node.clear();
        seen_edge.clear();
        let mut parent: Option<usize> = None;
        let mut residual = false;
        for &loc_id in s.location_ids.iter().rev() {
            let Some(nodes) = loc_id
                .checked_sub(1)
                .and_then(|i| loc_nodes.get(i as usize))
            else {
                continue;
            };
            for (ni, n) in nodes.iter().enumerate().rev() {
                let Some(n) = *n else {
                    residual = true;
                    continue;
                };
                if seen_node.insert(n) {
                    all[n].cum = all[n].cum.wrapping_add(w);
                }
                if let Some(p) = parent
                    && p != n
                    && seen_edge.insert((n, p))
                {
                    let inline = ni != nodes.len() - 1;
                    let e = edges.entry((p, n)).or_insert(Edge { weight: 0, inline });
                    e.weight = e.weight.wrapping_add(w);
                    if !inline {
                        e.inline = false;
                    }
                }
                parent = Some(n);
                residual = false;
            }
        }
        if let (Some(p), false) = (parent, residual) {
            all[p].flat = all[p].flat.wrapping_add(w);
        }
    }

    // Keep non-empty nodes, renumbering the edges.
    let mut renumber = vec![usize::MAX; all.len()];
    let mut nodes = Vec::new();
    for (i, n) in all.into_iter().enumerate() {
        if n.flat != 0 || n.cum != 0 {
            renumber[i] = nodes.len();
            nodes.push(n);
        }
    }
    let edges = edges
        .into_iter()
        .filter_map(|((a, b), e)| {
            let (a, b) = (renumber[a], renumber[b]);
            (a != usize::MAX && b != usize::MAX).then_some(((a, b), e))
        })
        .collect();
    Graph { nodes, edges }
}

impl Graph {
    /// `Nodes.Sort(FlatNameOrder)`.
    pub fn sort_flat_name(&mut self) {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        let names: Vec<String> = self.nodes.iter().map(|n| n.info.printable_name()).collect();
        let nodes = &self.nodes;
        order.sort_by(|&l, &r| {
            let (a, b) = (&nodes[l], &nodes[r]);
            b.flat
                .unsigned_abs()
                .cmp(&a.flat.unsigned_abs())
                .then_with(|| {
                    if a.info == b.info {
                        std::cmp::Ordering::Equal
                    } else {
                        names[l].cmp(&names[r])
                    }
                })
                .then_with(|| b.cum.unsigned_abs().cmp(&a.cum.unsigned_abs()))
                .then_with(|| a.info.sprint().cmp(&b.info.sprint()))
        });
        self.reorder(&order);
    }

    fn reorder(&mut self, order: &[usize]) {
        let mut new_index = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        self.nodes = order.iter().map(|&i| self.nodes[i].clone()).collect();
        self.edges = self
            .edges
            .drain()
            .map(|((a, b), e)| ((new_index[a], new_index[b]), e))
            .collect();
    }

    /// `TrimLowFrequencyEdges`: drops edges lighter than `cutoff`.
    pub fn trim_edges(&mut self, cutoff: i64) {
        self.edges
            .retain(|_, e| e.weight.unsigned_abs() >= cutoff.unsigned_abs());
    }

    /// ` (inline)` / ` (partial-inline)` / "" for node `i`, from its incoming edges.
    pub fn inline_label(&self, i: usize) -> &'static str {
        let (mut inline, mut noinline) = (false, false);
        for ((_, b), e) in &self.edges {
            if *b == i {
                if e.inline {
                    inline = true;
                } else {
                    noinline = true;
                }
            }
        }
        match (inline, noinline) {
            (true, true) => " (partial-inline)",
            (true, false) => " (inline)",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_paths() {
        assert_eq!(go_clean("a//b/./c/../d"), "a/b/d");
        assert_eq!(go_clean("/../x"), "/x");
        assert_eq!(go_clean("../x"), "../x");
        assert_eq!(go_clean(""), ".");
        assert_eq!(go_base("/a/b/"), "b");
        assert_eq!(go_base(""), ".");
        assert_eq!(go_base("/"), "/");
    }
}
