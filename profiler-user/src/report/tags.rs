//! Samples by their pprof labels: `--tag key=value` / `key=~regex` keeps only matching
//! samples (as `go tool pprof -tagfocus`), `--by-tag key` splits a report per label value.

use crate::profile::{LabelValue, Profile, Sample};

/// One `--tag`: a label key and what its value must be.
#[derive(Clone, Debug)]
pub struct TagFilter {
    pub key: String,
    pub matcher: TagMatch,
}

#[derive(Clone, Debug)]
pub enum TagMatch {
    Equals(String),
    /// Anchored at both ends, as pprof's -tagfocus does.
    Regex(regex::Regex),
}

impl TagFilter {
    /// `key=value` or `key=~regex`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (key, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected KEY=VALUE or KEY=~REGEX"))?;
        if key.is_empty() {
            return Err(format!("{s:?}: empty label key"));
        }
        let matcher = match rest.strip_prefix('~') {
            Some(re) => TagMatch::Regex(
                regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("{s:?}: {e}"))?,
            ),
            None => TagMatch::Equals(rest.to_string()),
        };
        Ok(TagFilter {
            key: key.to_string(),
            matcher,
        })
    }

    pub fn matches(&self, sample: &Sample) -> bool {
        sample.labels.iter().any(|l| {
            l.key == self.key
                && match &l.value {
                    LabelValue::Str(v) => self.value_matches(v),
                    LabelValue::Num(n) => self.value_matches(&n.to_string()),
                }
        })
    }

    fn value_matches(&self, v: &str) -> bool {
        match &self.matcher {
            TagMatch::Equals(want) => v == want,
            TagMatch::Regex(re) => re.is_match(v),
        }
    }
}

/// Drops the samples that do not match every filter.
pub fn keep_matching(profile: &mut Profile, filters: &[TagFilter]) {
    if filters.is_empty() {
        return;
    }
    profile
        .samples
        .retain(|s| filters.iter().all(|f| f.matches(s)));
}

/// The value of label `key` of a sample (numbers as decimal), if it has one.
pub fn value_of(sample: &Sample, key: &str) -> Option<String> {
    sample
        .labels
        .iter()
        .find(|l| l.key == key)
        .map(|l| match &l.value {
            LabelValue::Str(v) => v.clone(),
            LabelValue::Num(n) => n.to_string(),
        })
}

/// One profile per value of label `key` (samples without it under `None`), biggest first.
pub fn split_by(profile: &Profile, key: &str) -> Vec<(Option<String>, Profile)> {
    let mut groups: std::collections::BTreeMap<Option<String>, Vec<Sample>> = Default::default();
    for s in &profile.samples {
        groups.entry(value_of(s, key)).or_default().push(s.clone());
    }
    let i = profile.default_sample_type;
    let mut out: Vec<(Option<String>, Profile)> = groups
        .into_iter()
        .map(|(v, samples)| {
            let mut p = profile.clone();
            p.samples = samples;
            (v, p)
        })
        .collect();
    let total = |p: &Profile| -> i64 {
        p.samples
            .iter()
            .map(|s| s.values.get(i).copied().unwrap_or(0))
            .sum()
    };
    out.sort_by_key(|(_, p)| std::cmp::Reverse(total(p)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Label;

    fn sample(labels: &[(&str, &str)]) -> Sample {
        Sample {
            location_ids: vec![],
            values: vec![1, 10],
            labels: labels
                .iter()
                .map(|(k, v)| Label {
                    key: k.to_string(),
                    value: LabelValue::Str(v.to_string()),
                })
                .collect(),
        }
    }

    #[test]
    fn equals_and_regex() {
        let f = TagFilter::parse("worker=2").unwrap();
        assert!(f.matches(&sample(&[("worker", "2")])));
        assert!(!f.matches(&sample(&[("worker", "22")])));
        let f = TagFilter::parse("worker=~2|3").unwrap();
        assert!(f.matches(&sample(&[("worker", "3")])));
        assert!(!f.matches(&sample(&[("worker", "23")])));
        assert!(!f.matches(&sample(&[("other", "3")])));
        assert!(TagFilter::parse("nokey").is_err());
        assert!(TagFilter::parse("=v").is_err());
        assert!(TagFilter::parse("k=~(").is_err());
    }
}
