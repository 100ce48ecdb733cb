//! The command table's invariants and the key positions it gives.

use dcache_protocol::commands::{self, COMMANDS, CommandSpec, KeySpec};

fn keys_of(words: &[&str]) -> Vec<usize> {
    let (_, spec) = commands::lookup(words[0].as_bytes()).expect("a command");
    commands::keys(spec, words).collect()
}

fn spec_with(keys: &'static [KeySpec]) -> CommandSpec {
    CommandSpec {
        name: "x",
        arity: -1,
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

#[test]
fn names_are_lower_case_unique_and_found_in_any_case() {
    for (i, cmd) in COMMANDS.iter().enumerate() {
        assert_eq!(cmd.name, cmd.name.to_ascii_lowercase());
        assert_eq!(
            commands::lookup(cmd.name.to_ascii_uppercase().as_bytes()).map(|(i, _)| i),
            Some(i),
            "{}",
            cmd.name
        );
        let mut subs: Vec<&str> = cmd.subcommands.iter().map(|s| s.name).collect();
        subs.sort_unstable();
        subs.dedup();
        assert_eq!(
            subs.len(),
            cmd.subcommands.len(),
            "{}: unique subcommands",
            cmd.name
        );
        for sub in cmd.subcommands {
            assert!(
                sub.subcommands.is_empty(),
                "{}|{}: one level",
                cmd.name,
                sub.name
            );
            assert!(
                sub.arity.unsigned_abs() >= 2,
                "{}|{}: counts the container",
                cmd.name,
                sub.name
            );
        }
    }
    assert!(commands::lookup(b"nosuchcommand").is_none());
    assert!(commands::lookup(b"a-name-longer-than-any-command").is_none());
    assert!(commands::lookup(b"").is_none());
}

#[test]
fn every_key_spec_fits_the_arity() {
    // A fixed-arity command's keys must all be inside it: otherwise routing would read past the
    // request or miss a key.
    for cmd in COMMANDS
        .iter()
        .chain(COMMANDS.iter().flat_map(|c| c.subcommands))
    {
        for key in cmd.keys {
            if let (KeySpec::Range { first, last, .. }, arity) = (*key, cmd.arity) {
                assert!(first >= 1, "{}: the name is not a key", cmd.name);
                if arity > 0 && last >= 0 {
                    assert!(
                        (last as i32) < arity,
                        "{}: last key within the arity",
                        cmd.name
                    );
                }
            }
        }
    }
}

#[test]
fn ranges_steps_and_negative_ends() {
    assert_eq!(keys_of(&["GET", "k"]), [1]);
    assert_eq!(keys_of(&["mget", "a", "b", "c"]), [1, 2, 3]);
    assert_eq!(keys_of(&["MSET", "a", "1", "b", "2"]), [1, 3]);
    assert_eq!(keys_of(&["rename", "a", "b"]), [1, 2]);
    assert_eq!(keys_of(&["set", "k", "v", "PX", "10"]), [1]);
    assert_eq!(keys_of(&["ping"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["keys", "*"]), Vec::<usize>::new());
    // A short request yields what is there, never a position past its end.
    assert_eq!(keys_of(&["get"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["rename", "a"]), [1]);
    // Stop before the last argument: `-2`.
    const BUT_LAST: &[KeySpec] = &[KeySpec::Range {
        first: 1,
        last: -2,
        step: 1,
    }];
    let spec = spec_with(BUT_LAST);
    assert_eq!(
        commands::keys(&spec, &["x", "a", "b", "timeout"][..]).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(commands::keys(&spec, &["x"][..]).count(), 0);
}

#[test]
fn subcommand_keys() {
    assert_eq!(keys_of(&["MEMORY", "USAGE", "k"]), [2]);
    assert_eq!(keys_of(&["memory", "usage", "k", "SAMPLES", "5"]), [2]);
    assert_eq!(keys_of(&["memory", "help"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["object", "Encoding", "k"]), [2]);
    assert_eq!(keys_of(&["object", "nosuch", "k"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["object"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["client", "kill", "k"]), Vec::<usize>::new());
    assert_eq!(keys_of(&["cluster", "keyslot", "k"]), Vec::<usize>::new());
}

#[test]
fn counted_keys_as_eval_zunionstore_and_lmpop_have_them() {
    // ZUNIONSTORE dst numkeys key… [WEIGHTS …]
    const ZUNIONSTORE: &[KeySpec] = &[
        KeySpec::Range {
            first: 1,
            last: 1,
            step: 1,
        },
        KeySpec::Counted { at: 2, step: 1 },
    ];
    let spec = spec_with(ZUNIONSTORE);
    assert!(spec.movable_keys());
    assert_eq!(spec.legacy_range(), (1, 1, 1));
    let keys = |words: &[&str]| commands::keys(&spec, words).collect::<Vec<_>>();
    assert_eq!(
        keys(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
        [1, 3, 4]
    );
    assert_eq!(keys(&["zunionstore", "d", "0"]), [1]);
    // A count past the end, negative or not a number counts only what is there, or nothing.
    assert_eq!(keys(&["zunionstore", "d", "5", "a"]), [1, 3]);
    assert_eq!(keys(&["zunionstore", "d", "-1", "a"]), [1]);
    assert_eq!(keys(&["zunionstore", "d", "x", "a"]), [1]);
    assert_eq!(keys(&["zunionstore", "d"]), [1]);
    // Pairs after the count: key value key value.
    const PAIRS: &[KeySpec] = &[KeySpec::Counted { at: 1, step: 2 }];
    let spec = spec_with(PAIRS);
    assert_eq!(spec.legacy_range(), (0, 0, 0));
    let words = ["x", "2", "a", "1", "b", "2", "c", "3"];
    assert_eq!(
        commands::keys(&spec, &words[..]).collect::<Vec<_>>(),
        [2, 4]
    );
}

#[test]
fn flags_and_tips_read_as_redis_names() {
    let (_, mset) = commands::lookup(b"mset").unwrap();
    assert_eq!(mset.redis_flags().collect::<Vec<_>>(), ["write", "denyoom"]);
    assert_eq!(mset.legacy_range(), (1, -1, 2));
    assert_eq!(mset.tip("request_policy"), Some("multi_shard"));
    let (_, dbsize) = commands::lookup(b"dbsize").unwrap();
    assert_eq!(dbsize.tip("request_policy"), Some("all_shards"));
    assert_eq!(dbsize.tip("response_policy"), Some("agg_sum"));
    assert_eq!(dbsize.tip("request"), None);
    assert!(dbsize.arity_ok(1) && !dbsize.arity_ok(2));
    let (_, set) = commands::lookup(b"set").unwrap();
    assert!(!set.arity_ok(2) && set.arity_ok(3) && set.arity_ok(9));
}
