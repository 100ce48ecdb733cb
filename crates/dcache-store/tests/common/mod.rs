//! What a copy of a value must keep besides its contents: its form (`OBJECT ENCODING`), the
//! order a client sees where the form has one, and its memory count.

use dcache_store::Value;

/// A value's form, its elements (in the order a client reads them where the form keeps one,
/// sorted for a table, whose order is its own), and its memory count.
#[derive(Debug, PartialEq)]
pub struct Shape {
    pub form: &'static str,
    pub elements: Vec<Vec<u8>>,
    pub mem: usize,
}

pub fn shape(v: Value<'_>) -> Shape {
    let mem = match v {
        Value::Str(s) => s.len(),
        Value::Hash(h) => h.mem(),
        Value::List(l) => l.mem(),
        Value::Set(s) => s.mem(),
        Value::ZSet(z) => z.mem(),
    };
    let (form, mut elements, ordered): (&'static str, Vec<Vec<u8>>, bool) = match v {
        Value::Str(s) => ("string", vec![s.to_vec()], true),
        Value::Hash(h) => (
            if h.is_listpack() {
                "listpack"
            } else {
                "hashtable"
            },
            h.iter().map(|(f, v)| [f, b"=", v].concat()).collect(),
            h.is_listpack(),
        ),
        Value::List(l) => (l.encoding(), l.iter().map(<[u8]>::to_vec).collect(), true),
        Value::Set(s) => (
            s.encoding().name(),
            s.iter().map(|m| m.to_vec()).collect(),
            s.encoding().name() != "hashtable",
        ),
        Value::ZSet(z) => (
            if z.is_listpack() {
                "listpack"
            } else {
                "skiplist"
            },
            z.iter()
                .map(|(m, s)| [m, &s.to_bits().to_le_bytes()].concat())
                .collect(),
            true,
        ),
    };
    if !ordered {
        elements.sort();
    }
    Shape {
        form,
        elements,
        mem,
    }
}
