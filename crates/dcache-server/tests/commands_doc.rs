//! `docs/COMMANDS.md` is generated from the command table, so that the list users read is the
//! list the node serves. This test fails when the file is out of date; to rewrite it:
//!
//! ```sh
//! DCACHE_BLESS=1 cargo test -p dcache-server --test commands_doc
//! ```

use dcache_protocol::commands::{CommandSpec, KeySpec};
use dcache_server::command;

const FLAGS: [(u16, &str); 8] = [
    (command::WRITE, "write"),
    (command::READONLY, "readonly"),
    (command::DENYOOM, "denyoom"),
    (command::ADMIN, "admin"),
    (command::NO_AUTH, "no-auth"),
    (command::FAST, "fast"),
    (command::CONNECTION, "connection"),
    (command::PUBSUB, "pubsub"),
];

/// Redis's arity convention in words: `n` exactly, `-n` at least n (the name counts).
fn arity(cmd: &CommandSpec) -> String {
    if cmd.arity < 0 {
        format!("≥ {}", -cmd.arity)
    } else {
        cmd.arity.to_string()
    }
}

/// The arguments that are keys, counted from 1 after the name: `1`, `1..2`, `1..last`,
/// `1..last step 2`, `keys counted by 2`, or `—`; a container's are its subcommands'
/// (`usage: 2`).
fn keys(cmd: &CommandSpec) -> String {
    let own = cmd.keys.iter().map(key_spec).collect::<Vec<_>>().join(", ");
    let subs: Vec<String> = cmd
        .subcommands
        .iter()
        .filter(|s| !s.keys.is_empty())
        .map(|s| format!("{}: {}", s.name, keys(s)))
        .collect();
    match (own.is_empty(), subs.is_empty()) {
        (true, true) => "—".into(),
        (false, true) => own,
        (true, false) => subs.join(", "),
        (false, false) => format!("{own}, {}", subs.join(", ")),
    }
}

fn key_spec(spec: &KeySpec) -> String {
    match *spec {
        KeySpec::Range { first, last, step } => {
            let last = match last {
                -1 => "last".to_owned(),
                n if n < 0 => format!("last{}", n + 1),
                n => n.to_string(),
            };
            let mut text = if last == first.to_string() {
                last
            } else {
                format!("{first}..{last}")
            };
            if step > 1 {
                text.push_str(&format!(" step {step}"));
            }
            text
        }
        KeySpec::Counted { at, step } => {
            let mut text = format!("keys counted by {at}");
            if step > 1 {
                text.push_str(&format!(" step {step}"));
            }
            text
        }
    }
}

fn render() -> String {
    let mut doc = String::from(
        "# Commands\n\n\
         Every command a dcache node serves, generated from its command table\n\
         (`crates/dcache-protocol/src/commands.rs`); do not edit by hand. To regenerate:\n\
         `DCACHE_BLESS=1 cargo test -p dcache-server --test commands_doc`.\n\n\
         Arity counts the command name, as Redis's `COMMAND INFO` does (`≥ n`: at least n).\n\
         Keys are argument positions after the name. Flags: `write` changes data, `readonly`\n\
         only reads it, `denyoom` is refused with `-OOM` when memory is spent and nothing can\n\
         be evicted, `admin` is administrative, `no-auth` is allowed before `AUTH`, `fast` is\n\
         constant or logarithmic time, `connection` is about the connection, not data,\n\
         `pubsub` is publish/subscribe (a shard channel's position is routed as a key's).\n\n\
         | command | group | arity | keys | flags | summary |\n\
         |---|---|---|---|---|---|\n",
    );
    for cmd in command::table() {
        let flags: Vec<&str> = FLAGS
            .iter()
            .filter(|(bit, _)| cmd.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        doc.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            cmd.name.to_ascii_uppercase(),
            cmd.group,
            arity(cmd),
            keys(cmd.spec),
            flags.join(", "),
            cmd.summary.replace('|', "\\|"),
        ));
    }
    doc.push_str(&format!("\n{} commands.\n", command::table().len()));
    doc
}

#[test]
fn commands_md_matches_the_command_table() {
    let known = FLAGS.iter().fold(0, |all, (bit, _)| all | bit);
    for cmd in command::table() {
        assert_eq!(
            cmd.flags & !known,
            0,
            "{}: a flag the doc does not name; add it to FLAGS",
            cmd.name
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/COMMANDS.md");
    let want = render();
    if std::env::var_os("DCACHE_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/COMMANDS.md is out of date with the command table; regenerate it with\n  \
         DCACHE_BLESS=1 cargo test -p dcache-server --test commands_doc"
    );
}

/// The renderings the table uses, on shapes it has and ones it may get.
#[test]
fn key_positions_and_arity_read_as_words() {
    fn row(arity: i32, keys: &'static [KeySpec]) -> CommandSpec {
        CommandSpec {
            name: "x",
            arity,
            flags: 0,
            keys,
            group: "g",
            since: "1.0.0",
            complexity: "O(1)",
            summary: "",
            tips: &[],
            subcommands: &[],
        }
    }
    const fn range(first: usize, last: isize, step: usize) -> KeySpec {
        KeySpec::Range { first, last, step }
    }
    const ONE: &[KeySpec] = &[range(1, 1, 1)];
    const PAIRS: &[KeySpec] = &[range(1, -1, 2)];
    const TWO: &[KeySpec] = &[range(1, 2, 1)];
    const BUT_LAST: &[KeySpec] = &[range(2, -2, 1)];
    const COUNTED: &[KeySpec] = &[range(1, 1, 1), KeySpec::Counted { at: 2, step: 1 }];
    const SECOND: &[KeySpec] = &[range(2, 2, 1)];
    assert_eq!(keys(&row(2, ONE)), "1");
    assert_eq!(keys(&row(-3, PAIRS)), "1..last step 2");
    assert_eq!(keys(&row(3, TWO)), "1..2");
    assert_eq!(keys(&row(-1, &[])), "—");
    assert_eq!(keys(&row(-4, BUT_LAST)), "2..last-1");
    assert_eq!(keys(&row(-4, COUNTED)), "1, keys counted by 2");
    let usage = CommandSpec {
        name: "usage",
        ..row(-3, SECOND)
    };
    let memory = CommandSpec {
        subcommands: Box::leak(Box::new([usage])),
        ..row(-2, &[])
    };
    assert_eq!(keys(&memory), "usage: 2");
    assert_eq!(arity(&row(-3, &[])), "≥ 3");
    assert_eq!(arity(&row(4, &[])), "4");
}
