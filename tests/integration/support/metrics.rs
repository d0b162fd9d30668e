//! A small parser for the Prometheus text exposition format, enough to find a series by name
//! and a subset of its labels.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// True when every `(key, value)` in `want` is a label of this sample.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Parse every sample line (comments and blank lines skipped). Panics on a malformed line,
/// since the scrape must be valid.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("malformed metrics line: {l:?}")))
        .collect()
}

/// Samples named `name` whose labels include `want`.
pub fn find(text: &str, name: &str, want: &[(&str, &str)]) -> Vec<Sample> {
    parse(text)
        .into_iter()
        .filter(|s| s.name == name && s.has(want))
        .collect()
}

/// Sum of the samples named `name` whose labels include `want`; `None` if there are none.
pub fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found = find(text, name, want);
    (!found.is_empty()).then(|| found.iter().map(|s| s.value).sum())
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        let (parsed, after) = parse_labels(&rest[1..])?;
        labels = parsed;
        rest = after;
    }
    // value, then an optional timestamp
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parse `k="v",k2="v2"}` and return the labels plus the text after `}`.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key, value);
        s = &s[end + 1..];
    }
}

#[test]
fn parses_labels_and_values() {
    let text = "# HELP x y\nfoo_total{a=\"1\",b=\"\",c=\"q\\\"x\"} 3\nbar 4.5 1700000000\n";
    let all = parse(text);
    assert_eq!(all.len(), 2);
    assert_eq!(
        value(text, "foo_total", &[("a", "1"), ("b", "")]),
        Some(3.0)
    );
    assert_eq!(all[0].labels["c"], "q\"x");
    assert_eq!(value(text, "bar", &[]), Some(4.5));
    assert_eq!(value(text, "foo_total", &[("a", "2")]), None);
}
