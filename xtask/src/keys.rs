//! Every key a config struct accepts, found by driving its `Deserialize` impl with a tracing
//! deserializer: each struct hands serde its field names, so the derive itself is the source of
//! truth (no list to keep in sync). Nested structs become dotted keys (`collector.url`), maps of
//! tables get a `<name>` segment (`probes.<name>.enabled`), `toml::Spanned` is looked through.
//!
//! A leaf the tracer cannot fake (a socket address, a cron line parsed on deserialization) makes
//! the whole deserialization fail; its key is already recorded, so it is skipped and the trace
//! runs again until it completes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::de::value::{BorrowedStrDeserializer, Error, StrDeserializer, U64Deserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
/// The segment of a map's free-form key (`[probes.logs]` is `probes.<name>`).
pub const ANY_NAME: &str = "<name>";

#[derive(Debug, Default)]
struct Trace {
    /// Every path seen, and whether it turned out to be a table.
    paths: BTreeMap<String, bool>,
    /// The path whose value is being read: the culprit when deserialization fails.
    current: String,
    skip: BTreeSet<String>,
}

/// The dotted keys (leaves only, not tables) that `T` accepts, sorted.
pub fn keys<T: DeserializeOwned>() -> Result<Vec<String>, String> {
    let trace = Rc::new(RefCell::new(Trace::default()));
    for _ in 0..1000 {
        let tracer = Tracer {
            path: String::new(),
            trace: Rc::clone(&trace),
        };
        match T::deserialize(tracer) {
            Ok(_) => {
                let t = trace.borrow();
                return Ok(t
                    .paths
                    .iter()
                    .filter(|(_, table)| !**table)
                    .map(|(p, _)| p.clone())
                    .collect());
            }
            Err(e) => {
                let mut t = trace.borrow_mut();
                let culprit = t.current.clone();
                if culprit.is_empty() || !t.skip.insert(culprit.clone()) {
                    return Err(format!("cannot trace the config past {culprit:?}: {e}"));
                }
            }
        }
    }
    Err("too many keys that cannot be traced".to_owned())
}

struct Tracer {
    path: String,
    trace: Rc<RefCell<Trace>>,
}

impl Tracer {
    fn at(&self, path: String) -> Tracer {
        Tracer {
            path,
            trace: Rc::clone(&self.trace),
        }
    }

    fn child(&self, segment: &str) -> String {
        if self.path.is_empty() {
            segment.to_owned()
        } else {
            format!("{}.{segment}", self.path)
        }
    }

    fn mark_table(&self) {
        if !self.path.is_empty() {
            self.trace.borrow_mut().paths.insert(self.path.clone(), true);
        }
    }
}

/// The fields of one struct (or the one made-up key of a map), each value traced one level down.
struct Fields {
    tracer: Tracer,
    keys: std::vec::IntoIter<String>,
    value_path: Option<String>,
    /// A map's key may be any type (`Spanned<String>`): it is traced too, and recorded as nothing.
    map: bool,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        for key in self.keys.by_ref() {
            let path = self.tracer.child(&key);
            let mut t = self.tracer.trace.borrow_mut();
            if t.skip.contains(&path) {
                continue;
            }
            t.paths.entry(path.clone()).or_insert(false);
            drop(t);
            self.value_path = Some(path.clone());
            if self.map {
                return seed.deserialize(self.tracer.at(path)).map(Some);
            }
            let key: StrDeserializer<'_, Error> = key.as_str().into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = self.value_path.take().unwrap_or_default();
        self.tracer.trace.borrow_mut().current = path.clone();
        seed.deserialize(self.tracer.at(path))
    }
}

/// `toml::Spanned<T>`: start and end are numbers, the value is `T` at the same path.
struct Spanned {
    tracer: Tracer,
    fields: std::slice::Iter<'static, &'static str>,
    next: &'static str,
}

impl<'de> MapAccess<'de> for Spanned {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.next = field;
        // Spanned reads its keys as `&'de str`: only a borrowed string will do.
        seed.deserialize(BorrowedStrDeserializer::<Error>::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        if self.next == SPANNED_VALUE {
            seed.deserialize(self.tracer.at(self.tracer.path.clone()))
        } else {
            let zero: U64Deserializer<Error> = 0u64.into_deserializer();
            seed.deserialize(zero)
        }
    }
}

/// A sequence of one element, traced at the sequence's own path.
struct One {
    tracer: Option<Tracer>,
}

impl<'de> SeqAccess<'de> for One {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        match self.tracer.take() {
            Some(t) => seed.deserialize(t).map(Some),
            None => Ok(None),
        }
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Tracer {
    type Error = Error;

    leaf! {
        deserialize_bool => visit_bool(true),
        deserialize_i8 => visit_i64(1),
        deserialize_i16 => visit_i64(1),
        deserialize_i32 => visit_i64(1),
        deserialize_i64 => visit_i64(1),
        deserialize_u8 => visit_u64(1),
        deserialize_u16 => visit_u64(1),
        deserialize_u32 => visit_u64(1),
        deserialize_u64 => visit_u64(1),
        deserialize_f32 => visit_f64(1.0),
        deserialize_f64 => visit_f64(1.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str("x"),
        deserialize_string => visit_str("x"),
        deserialize_identifier => visit_str("x"),
        deserialize_any => visit_str("x"),
        deserialize_bytes => visit_bytes(b"x"),
        deserialize_byte_buf => visit_bytes(b"x"),
        deserialize_unit => visit_unit(),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(One { tracer: Some(self) })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(One { tracer: Some(self) })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(One { tracer: Some(self) })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.mark_table();
        visitor.visit_map(Fields {
            keys: vec![ANY_NAME.to_owned()].into_iter(),
            tracer: self,
            value_path: None,
            map: true,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            return visitor.visit_map(Spanned {
                tracer: self,
                fields: fields.iter(),
                next: "",
            });
        }
        self.mark_table();
        visitor.visit_map(Fields {
            keys: fields
                .iter()
                .map(|f| (*f).to_owned())
                .collect::<Vec<_>>()
                .into_iter(),
            tracer: self,
            value_path: None,
            map: false,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or("x");
        let variant: StrDeserializer<'_, Error> = first.into_deserializer();
        visitor.visit_enum(variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields, default)]
    struct Outer {
        listen: std::net::SocketAddr,
        name: Option<String>,
        inner: Inner,
        spanned: toml::Spanned<u64>,
        tables: BTreeMap<toml::Spanned<String>, Inner>,
        #[serde(rename = "renamed-key")]
        renamed: Vec<String>,
    }

    impl Default for Outer {
        fn default() -> Self {
            Outer {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
                name: None,
                inner: Inner::default(),
                spanned: toml::Spanned::new(0..0, 0),
                tables: BTreeMap::new(),
                renamed: Vec::new(),
            }
        }
    }

    #[derive(Deserialize, Default)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        flag: bool,
        mode: Mode,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Keep,
        Drop,
    }

    #[test]
    fn nested_spanned_maps_renames_and_untraceable_leaves() {
        assert_eq!(
            keys::<Outer>().unwrap(),
            [
                "inner.flag",
                "inner.mode",
                "listen",
                "name",
                "renamed-key",
                "spanned",
                "tables.<name>.flag",
                "tables.<name>.mode",
            ]
        );
    }
}
