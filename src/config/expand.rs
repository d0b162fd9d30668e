//! `${VAR}` and `${VAR:-default}` expansion of the raw config text, before YAML parsing.
//!
//! Owns: the substitution syntax and its errors. `$$` is a literal `$`. Variables come from a
//! lookup function so tests never touch the process environment.

use super::locate::Pos;

#[derive(Debug, PartialEq, Eq)]
pub struct ExpandError {
    pub pos: Pos,
    pub message: String,
}

pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<ExpandError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            consumed += i + 2;
            rest = stripped;
            continue;
        }
        if !after.starts_with('{') {
            out.push('$');
            consumed += i + 1;
            rest = after;
            continue;
        }
        let pos = pos_of(text, consumed + i);
        let Some(end) = after.find('}') else {
            errors.push(ExpandError {
                pos,
                message: "unterminated `${` in variable reference".into(),
            });
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let inner = &after[1..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(ExpandError {
                pos,
                message: format!("invalid variable name `{name}` in `${{{inner}}}`"),
            });
        } else {
            match (lookup(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => errors.push(ExpandError {
                    pos,
                    message: format!("environment variable `{name}` is not set (use `${{{name}:-default}}` for a default)"),
                }),
            }
        }
        consumed += i + 1 + end + 1;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn pos_of(text: &str, offset: usize) -> Pos {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, col }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("svc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_values_defaults_and_escapes() {
        let got = expand("a: ${HOST}\nb: ${NOPE:-x}\nc: ${EMPTY:-d}\nd: $$5 $x", &env).unwrap();
        assert_eq!(got, "a: svc\nb: x\nc: d\nd: $5 $x");
    }

    #[test]
    fn reports_every_missing_variable_with_position() {
        let errs = expand("a: 1\nb: ${NOPE}\nc: x ${ALSO}", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].pos, Pos { line: 2, col: 4 });
        assert_eq!(errs[1].pos, Pos { line: 3, col: 6 });
        assert!(errs[0].message.contains("`NOPE` is not set"));
    }

    #[test]
    fn rejects_bad_names_and_unterminated() {
        assert_eq!(expand("${a b}", &env).unwrap_err().len(), 1);
        assert!(expand("x ${OPEN", &env).unwrap_err()[0]
            .message
            .contains("unterminated"));
    }
}
