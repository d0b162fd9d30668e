//! A minimal JSON-RPC 2.0 envelope parser over `&[u8]`.
//!
//! Owns: reading `jsonrpc`, `id`, `method`, `result`/`error` presence, and `params.name`,
//! `params.uri`, `params._meta.traceparent` of one message or a batch, borrowing strings from
//! the body where they have no escapes. Everything else is skipped with `IgnoredAny`, so large
//! `arguments` cost a scan, never an allocation. Does not own: deciding what a message means
//! (`classify`).
//!
//! Key types: [`Parsed`], [`Fields`], [`Id`]. The parser never errors on shape (a `method` that
//! is a number, a missing `jsonrpc`): it records what it saw and lets `classify` decide. The one
//! error is [`Duplicate`]: a key that outrider reads appearing twice in one object, which
//! parsers disagree on (first wins vs last wins) and would let a body say one thing to the
//! policy and another to the server.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

mod raw_id;
#[cfg(test)]
mod tests;

pub use raw_id::raw_ids;

/// What a body parsed to.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A JSON object.
    Single(Fields<'a>),
    /// A JSON array; elements that are not objects have `Fields::object == false`.
    Batch(Vec<Fields<'a>>),
    /// Not JSON, or JSON whose top level is neither an object nor an array.
    NotJson,
}

/// A key outrider reads appeared twice in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate(pub &'static str);

/// A JSON value that should be a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str<'a> {
    Str(Cow<'a, str>),
    NotStr,
}

impl<'a> Str<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Str::Str(s) => Some(s),
            Str::NotStr => None,
        }
    }
}

/// A JSON-RPC id as parsed. `Invalid` is an object, array or boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum Id<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Null,
    Invalid,
}

/// The fields of one message object; `None` means the key was absent.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// False for a batch element that is not an object.
    pub object: bool,
    pub jsonrpc: Option<Str<'a>>,
    pub id: Option<Id<'a>>,
    pub method: Option<Str<'a>>,
    /// `Some` when `params` was present; its fields are only read when it is an object.
    pub params: Option<Params<'a>>,
    pub has_result: bool,
    pub has_error: bool,
    duplicate: Option<&'static str>,
}

/// The `params` fields outrider reads.
#[derive(Debug, Default)]
pub struct Params<'a> {
    pub name: Option<Str<'a>>,
    pub uri: Option<Str<'a>>,
    pub traceparent: Option<Str<'a>>,
    duplicate: Option<&'static str>,
}

/// Parse a body. Invalid JSON (including trailing garbage) is `Ok(Parsed::NotJson)`.
pub fn parse(body: &[u8]) -> Result<Parsed<'_>, Duplicate> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = match Top::deserialize(&mut de).and_then(|t| de.end().map(|()| t)) {
        Ok(Top(p)) => p,
        Err(_) => return Ok(Parsed::NotJson),
    };
    let dup = match &parsed {
        Parsed::Single(f) => f.duplicate(),
        Parsed::Batch(v) => v.iter().find_map(Fields::duplicate),
        Parsed::NotJson => None,
    };
    match dup {
        Some(key) => Err(Duplicate(key)),
        None => Ok(parsed),
    }
}

impl Fields<'_> {
    fn duplicate(&self) -> Option<&'static str> {
        self.duplicate
            .or_else(|| self.params.as_ref().and_then(|p| p.duplicate))
    }
}

/// Drain any non-matching value so the visitors below accept every JSON type.
macro_rules! accept_other {
    ($ret:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($ret)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($ret)
        }
    };
}

macro_rules! drain_containers {
    ($ret:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($ret)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($ret)
        }
    };
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str::Str(Cow::Borrowed(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Str::Str(Cow::Owned(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Str::NotStr)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Str::NotStr)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Str::NotStr)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Str::NotStr)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Str::NotStr)
            }
            drain_containers!(Str::NotStr);
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Id<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Borrowed(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Owned(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Id::U64(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Id::I64(n))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                Ok(Id::F64(n))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Id::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Id::Invalid)
            }
            drain_containers!(Id::Invalid);
        }
        d.deserialize_any(V)
    }
}

/// Set `slot` from the next value, or record a duplicate key and skip the value.
fn read_once<'de, A, T>(
    map: &mut A,
    slot: &mut Option<T>,
    dup: &mut Option<&'static str>,
    key: &'static str,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    if slot.is_some() {
        dup.get_or_insert(key);
        map.next_value::<IgnoredAny>()?;
    } else {
        *slot = Some(map.next_value()?);
    }
    Ok(())
}

fn flag_once<'de, A: MapAccess<'de>>(
    map: &mut A,
    flag: &mut bool,
    dup: &mut Option<&'static str>,
    key: &'static str,
) -> Result<(), A::Error> {
    if *flag {
        dup.get_or_insert(key);
    }
    *flag = true;
    map.next_value::<IgnoredAny>()?;
    Ok(())
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_other!(Fields::default());
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Fields::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut f = Fields {
                    object: true,
                    ..Fields::default()
                };
                let dup = &mut f.duplicate;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str().unwrap_or_default() {
                        "jsonrpc" => read_once(&mut map, &mut f.jsonrpc, dup, "jsonrpc")?,
                        "id" => read_once(&mut map, &mut f.id, dup, "id")?,
                        "method" => read_once(&mut map, &mut f.method, dup, "method")?,
                        "params" => read_once(&mut map, &mut f.params, dup, "params")?,
                        "result" => flag_once(&mut map, &mut f.has_result, dup, "result")?,
                        "error" => flag_once(&mut map, &mut f.has_error, dup, "error")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(f)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_other!(Params::default());
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut p = Params::default();
                let mut meta: Option<Meta<'de>> = None;
                let dup = &mut p.duplicate;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str().unwrap_or_default() {
                        "name" => read_once(&mut map, &mut p.name, dup, "params.name")?,
                        "uri" => read_once(&mut map, &mut p.uri, dup, "params.uri")?,
                        "_meta" => read_once(&mut map, &mut meta, dup, "params._meta")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if let Some(meta) = meta {
                    p.traceparent = meta.traceparent;
                    if meta.duplicate {
                        p.duplicate.get_or_insert("params._meta.traceparent");
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_any(V)
    }
}

/// `params._meta`: only `traceparent` is read.
#[derive(Default)]
struct Meta<'a> {
    traceparent: Option<Str<'a>>,
    duplicate: bool,
}

impl<'de> Deserialize<'de> for Meta<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Meta<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_other!(Meta::default());
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Meta::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut m = Meta::default();
                let mut dup = None;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.as_str() == Some("traceparent") {
                        read_once(&mut map, &mut m.traceparent, &mut dup, "traceparent")?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                m.duplicate = dup.is_some();
                Ok(m)
            }
        }
        d.deserialize_any(V)
    }
}

/// The top level: object, array of anything, or something else.
struct Top<'a>(Parsed<'a>);

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            accept_other!(Top(Parsed::NotJson));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(f) = seq.next_element::<Fields<'de>>()? {
                    v.push(f);
                }
                Ok(Top(Parsed::Batch(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let f = Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Top(Parsed::Single(f)))
            }
        }
        d.deserialize_any(V)
    }
}
