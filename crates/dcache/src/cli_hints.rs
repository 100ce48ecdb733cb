//! What the interactive `dcache cli` prompt shows after a command name: its arguments, greyed, as
//! redis-cli does.

use std::borrow::Cow;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// Command → argument synopsis, for the commands people type most.
const HINTS: &[(&str, &str)] = &[
    ("get", "key"),
    (
        "set",
        "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time|PXAT unix-time-ms|KEEPTTL]",
    ),
    ("setnx", "key value"),
    ("setex", "key seconds value"),
    ("psetex", "key milliseconds value"),
    (
        "getex",
        "key [EX seconds|PX milliseconds|EXAT unix-time|PXAT unix-time-ms|PERSIST]",
    ),
    ("getdel", "key"),
    ("getset", "key value"),
    ("mget", "key [key ...]"),
    ("mset", "key value [key value ...]"),
    ("append", "key value"),
    ("strlen", "key"),
    ("getrange", "key start end"),
    ("setrange", "key offset value"),
    ("incr", "key"),
    ("decr", "key"),
    ("incrby", "key increment"),
    ("decrby", "key decrement"),
    ("incrbyfloat", "key increment"),
    ("del", "key [key ...]"),
    ("exists", "key [key ...]"),
    ("type", "key"),
    ("keys", "pattern"),
    ("scan", "cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    ("rename", "key newkey"),
    ("copy", "source destination [REPLACE]"),
    ("expire", "key seconds [NX|XX|GT|LT]"),
    ("pexpire", "key milliseconds [NX|XX|GT|LT]"),
    ("ttl", "key"),
    ("pttl", "key"),
    ("persist", "key"),
    ("hset", "key field value [field value ...]"),
    ("hget", "key field"),
    ("hmget", "key field [field ...]"),
    ("hdel", "key field [field ...]"),
    ("hgetall", "key"),
    ("hincrby", "key field increment"),
    ("info", "[section ...]"),
    ("config", "GET parameter | SET parameter value"),
    ("dbsize", ""),
    ("ping", "[message]"),
];

/// The hint for what has been typed so far: the rest of the synopsis after the arguments given.
#[must_use]
pub fn hint_for(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let name = words.next()?.to_ascii_lowercase();
    let (_, synopsis) = HINTS.iter().find(|(n, _)| *n == name)?;
    if synopsis.is_empty() {
        return None;
    }
    let given = words.count();
    let trailing_space = line.ends_with(' ');
    if given > 0 && !trailing_space {
        return None;
    }
    let rest: Vec<&str> = synopsis.split(' ').skip(given).collect();
    if rest.is_empty() {
        return None;
    }
    Some(format!(
        "{}{}",
        if trailing_space { "" } else { " " },
        rest.join(" ")
    ))
}

pub struct Hints;

impl Helper for Hints {}

impl Completer for Hints {
    type Candidate = String;
}

impl Validator for Hints {}

impl Hinter for Hints {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        (pos == line.len()).then(|| hint_for(line)).flatten()
    }
}

impl Highlighter for Hints {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }
}

#[cfg(test)]
mod tests {
    use super::hint_for;

    #[test]
    fn hints_follow_what_was_typed() {
        assert_eq!(hint_for("get").as_deref(), Some(" key"));
        assert_eq!(hint_for("GET ").as_deref(), Some("key"));
        assert_eq!(hint_for("get k").as_deref(), None);
        assert_eq!(
            hint_for("hset s ").as_deref(),
            Some("field value [field value ...]")
        );
        assert_eq!(hint_for("get k ").as_deref(), None);
        assert_eq!(hint_for("nosuch").as_deref(), None);
        assert_eq!(hint_for("").as_deref(), None);
    }
}
