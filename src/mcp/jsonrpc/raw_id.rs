//! Byte ranges of `id` members, for echoing an id exactly as the client wrote it.
//!
//! serde_json (without `raw_value`) gives ids as values, and re-serialising `1.0`, `1e3` or
//! `"\u0041"` would change their bytes. Those ids are rare, so `classify` only calls this
//! scanner for them. It runs after serde_json accepted the body, so it may assume valid JSON;
//! it still never panics or loops on any input (it returns `None` instead).

/// The raw text of the `id` member of each message: one entry for a single object, one per
/// element for an array. `None` where an element has no `id` or is not an object.
pub fn raw_ids(body: &[u8]) -> Vec<Option<&str>> {
    let i = ws(body, 0);
    match body.get(i) {
        Some(b'{') => vec![object_id(body, i)],
        Some(b'[') => array_ids(body, i).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn array_ids(b: &[u8], start: usize) -> Option<Vec<Option<&str>>> {
    let mut out = Vec::new();
    let mut i = ws(b, start + 1);
    if b.get(i) == Some(&b']') {
        return Some(out);
    }
    loop {
        out.push(if b.get(i) == Some(&b'{') {
            object_id(b, i)
        } else {
            None
        });
        i = ws(b, skip_value(b, i)?);
        match b.get(i)? {
            b',' => i = ws(b, i + 1),
            b']' => return Some(out),
            _ => return None,
        }
    }
}

fn object_id(b: &[u8], start: usize) -> Option<&str> {
    let mut i = ws(b, start + 1);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let key_end = skip_string(b, i)?;
        let key = b.get(i..key_end)?;
        i = ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let v = ws(b, i + 1);
        let v_end = skip_value(b, v)?;
        if key_is_id(key) {
            return std::str::from_utf8(b.get(v..v_end)?).ok();
        }
        i = ws(b, v_end);
        match b.get(i)? {
            b',' => i = ws(b, i + 1),
            _ => return None,
        }
    }
}

/// `key` is the quoted key text; escapes (`"\u0069d"`) are decoded the way serde_json does.
fn key_is_id(key: &[u8]) -> bool {
    if key == b"\"id\"" {
        return true;
    }
    key.contains(&b'\\') && serde_json::from_slice::<String>(key).is_ok_and(|k| k == "id")
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `i` is at an opening quote; returns the index after the closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// Returns the index after the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_as_written() {
        assert_eq!(raw_ids(br#"{"id":1.0,"a":[{"id":2}]}"#), vec![Some("1.0")]);
        assert_eq!(
            raw_ids(br#" { "x" : {"id":"no"} , "id" : "\u0041" } "#),
            vec![Some(r#""\u0041""#)]
        );
        assert_eq!(raw_ids(br#"{"\u0069d":1e3}"#), vec![Some("1e3")]);
        assert_eq!(
            raw_ids(br#"[{"id":-0},3,{"m":"]"},{"id":"a\"b"}]"#),
            vec![Some("-0"), None, None, Some(r#""a\"b""#)]
        );
        assert_eq!(raw_ids(b"[]"), Vec::<Option<&str>>::new());
        assert_eq!(raw_ids(b"{}"), vec![None]);
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            &b"{"[..],
            b"[",
            b"{\"id\"",
            b"{\"id\":",
            b"[{\"a\":\"\\",
            b"{\"a\":]}",
            b"\"",
        ] {
            let _ = raw_ids(s);
        }
    }
}
