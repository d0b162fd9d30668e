//! Loading the YAML config: env expansion, parsing, validation, and error reporting.
//!
//! Owns: the entry points (`load_file`, `load_str`), the `Errors` type that prints
//! `FILE:LINE:COL: message` per problem, and `Loaded` (runtime model + provenance).
//! Submodules: `schema` (serde types), `validate` (schema -> `model`), `model` (runtime types),
//! `locate` (YAML path -> position), `expand` (`${VAR}`), `units` (durations, sizes).

pub mod expand;
pub mod locate;
pub mod model;
pub mod schema;
pub mod units;
pub mod validate;
pub mod watch;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use locate::{Index, Pos};
pub use model::Config;

/// The config embedded in the binary, used by `outrider run` without `-c`.
pub const EMBEDDED_DEFAULT: &str = include_str!("config/default.yaml");

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub col: usize,
    /// YAML path of the offending node, e.g. `outbound.routes[1].timeout` (empty for syntax errors).
    pub path: String,
    pub message: String,
}

/// Every problem found in one config file; `Display` prints one `SOURCE:LINE:COL: message` per line.
#[derive(Debug, Clone)]
pub struct Errors {
    pub source: String,
    pub list: Vec<Error>,
}

impl Errors {
    fn one(source: &str, pos: Pos, message: String) -> Errors {
        Errors {
            source: source.to_owned(),
            list: vec![Error {
                line: pos.line,
                col: pos.col,
                path: String::new(),
                message,
            }],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Error> {
        self.list.iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.source, e.line, e.col, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// A validated config plus where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Arc<Config>,
    /// Path given by the user, or `<embedded>` (what error messages name).
    pub source: String,
    /// The file, when loaded from one (what reloads re-read).
    pub path: Option<std::path::PathBuf>,
    /// sha256 of the file as read (before `${VAR}` expansion), lower-case hex.
    pub sha256: String,
    pub loaded_at: SystemTime,
    /// The effective config (after expansion and defaults of typed fields) for `GET /config`.
    pub effective: Arc<Effective>,
}

/// Reads and validates a config file; `${VAR}` comes from the process environment.
pub fn load_file(path: &Path) -> Result<Loaded, Errors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Errors::one(
            &source,
            Pos { line: 1, col: 1 },
            format!("cannot read config file: {e}"),
        )
    })?;
    let mut loaded = load_str_with_env(&text, &source, &|k| std::env::var(k).ok())?;
    loaded.path = Some(path.to_path_buf());
    Ok(loaded)
}

/// Validates config text; `${VAR}` comes from the process environment.
pub fn load_str(text: &str, source: &str) -> Result<Loaded, Errors> {
    load_str_with_env(text, source, &|k| std::env::var(k).ok())
}

/// Validates config text with an explicit variable lookup (tests never touch the environment).
pub fn load_str_with_env(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Errors> {
    let sha256 = sha256_hex(text);
    let expanded = expand::expand(text, env).map_err(|errs| Errors {
        source: source.to_owned(),
        list: errs
            .into_iter()
            .map(|e| Error {
                line: e.pos.line,
                col: e.pos.col,
                path: String::new(),
                message: e.message,
            })
            .collect(),
    })?;
    // Fast path for a valid file: one typed pass. Any parse error falls back to the slow
    // path, which parses each route and backend on its own to report every problem.
    let validated =
        match serde_yaml::from_str::<schema::File<schema::Route, schema::Backend>>(&expanded) {
            Ok(file) => validate::validate(&file).map_err(|p| located(source, &expanded, p))?,
            Err(_) => slow_path(source, &expanded)?,
        };
    Ok(Loaded {
        config: Arc::new(validated.config),
        source: source.to_owned(),
        path: None,
        sha256,
        loaded_at: SystemTime::now(),
        effective: Arc::new(Effective {
            file: validated.file,
        }),
    })
}

fn slow_path(source: &str, expanded: &str) -> Result<validate::Validated, Errors> {
    let value = parse_yaml(expanded).map_err(|(pos, m)| Errors::one(source, pos, m))?;
    let file: schema::File = match serde_path_to_error::deserialize(value) {
        Ok(f) => f,
        Err(e) => {
            let index = Index::build(expanded);
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            let pos = if msg.starts_with("unknown field") {
                index.key(&path)
            } else {
                index.value(&path)
            };
            let message = if path == "." {
                msg
            } else {
                format!("{path}: {msg}")
            };
            return Err(Errors {
                source: source.to_owned(),
                list: vec![Error {
                    line: pos.line,
                    col: pos.col,
                    path,
                    message,
                }],
            });
        }
    };
    validate::validate(&file).map_err(|p| located(source, expanded, p))
}

/// Positions are only needed when there are problems: index the text once, sort by position.
fn located(source: &str, expanded: &str, problems: Vec<validate::Problem>) -> Errors {
    let index = Index::build(expanded);
    let mut list: Vec<Error> = problems
        .into_iter()
        .map(|p| {
            let pos = p.pos(&index);
            Error {
                line: pos.line,
                col: pos.col,
                path: p.path,
                message: p.message,
            }
        })
        .collect();
    list.sort_by_key(|e| (e.line, e.col));
    Errors {
        source: source.to_owned(),
        list,
    }
}

/// The effective config as parsed, rendered to JSON on demand for `GET /config`.
#[derive(Debug)]
pub struct Effective {
    file: schema::File<schema::Route, schema::Backend>,
}

impl Effective {
    /// The file after `${VAR}` expansion, with typed routes and backends (defaults filled in).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.file).expect("schema types serialize to JSON")
    }
}

/// Lower-case hex sha256 of the config text as read (before `${VAR}` expansion).
pub fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The one place that calls the YAML library (serde_yaml is archived; a fork is a one-line swap).
pub fn parse_yaml(text: &str) -> Result<serde_yaml::Value, (Pos, String)> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
            line: l.line(),
            col: l.column(),
        });
        (
            pos,
            format!("YAML syntax: {}", strip_location(&e.to_string())),
        )
    })?;
    if value.is_null() {
        return Err((
            Pos { line: 1, col: 1 },
            "config is empty (expected a mapping with `version: 1`)".into(),
        ));
    }
    Ok(value)
}

fn strip_location(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

#[cfg(test)]
mod tests;
