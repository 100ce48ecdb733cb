//! Server commands: COMMAND, INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, MEMORY, OBJECT.

use std::ops::RangeInclusive;

use dcache_protocol::Args;
use dcache_store::{Lookup, PolicyKind, PolicyName, Value, glob_match};

use dcache_protocol::commands::KeySpec;

use super::{
    CmdResult, Command, CommandSpec, Ctx, Error, SYNTAX, WRITE, help, int_arg, is, lookup,
    subcommand_arity, table, unknown_subcommand,
};
use crate::config::{ByteSize, OutputBufferLimits, ranges};

/// The ACL categories of a command, or of a container's subcommand (`sub`).
fn acl_categories(cmd: &Command, sub: Option<&CommandSpec>) -> Vec<String> {
    let fullname = sub.map(|s| format!("{}|{}", cmd.name, s.name));
    crate::acl::unit_categories(cmd, fullname.as_deref())
        .iter()
        .map(|c| format!("@{c}"))
        .collect()
}

/// How a command uses its keys, in Redis's key-spec flags: what `COMMAND INFO` and
/// `COMMAND GETKEYSANDFLAGS` show.
fn key_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.flags & WRITE != 0 {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    }
}

/// One key specification in Redis 7's form: flags, where the search begins, how keys are found.
fn key_spec(ctx: &mut Ctx<'_>, spec: &CommandSpec, key: &KeySpec) {
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    let flags = key_flags(spec);
    ctx.out.array(flags.len());
    for f in flags {
        ctx.out.simple(f);
    }
    let (begin, find) = match *key {
        KeySpec::Range { first, last, step } => {
            // Redis counts a non-negative last key from where the search began.
            let last = if last < 0 {
                last as i64
            } else {
                last as i64 - first as i64
            };
            (
                first,
                (
                    "range",
                    [("lastkey", last), ("keystep", step as i64), ("limit", 0)],
                ),
            )
        }
        KeySpec::Counted { at, step } => (
            at,
            (
                "keynum",
                [("keynumidx", 0), ("firstkey", 1), ("keystep", step as i64)],
            ),
        ),
    };
    ctx.out.bulk(b"begin_search");
    ctx.out.map(2);
    ctx.out.bulk(b"type");
    ctx.out.bulk(b"index");
    ctx.out.bulk(b"spec");
    ctx.out.map(1);
    ctx.out.bulk(b"index");
    ctx.out.int(begin as i64);
    ctx.out.bulk(b"find_keys");
    ctx.out.map(2);
    ctx.out.bulk(b"type");
    ctx.out.bulk(find.0.as_bytes());
    ctx.out.bulk(b"spec");
    ctx.out.map(find.1.len());
    for (name, value) in find.1 {
        ctx.out.bulk(name.as_bytes());
        ctx.out.int(value);
    }
}

/// One command as `COMMAND INFO` describes it, Redis 7's ten fields: name, arity, flags, legacy
/// key range, ACL categories, tips, key specifications, subcommands (each in the same form).
fn command_info(ctx: &mut Ctx<'_>, cmd: &Command, sub: Option<&CommandSpec>) {
    let spec = sub.unwrap_or(cmd.spec);
    ctx.out.array(10);
    match sub {
        Some(s) => ctx.out.bulk(format!("{}|{}", cmd.name, s.name).as_bytes()),
        None => ctx.out.bulk(cmd.name.as_bytes()),
    }
    ctx.out.int(i64::from(spec.arity));
    // A container that needs a subcommand has no flags of its own in Redis 7: they are its
    // subcommands'. (Ours keep theirs for the ACL categories they imply.)
    let flags: Vec<&str> = if sub.is_none() && !cmd.subcommands.is_empty() && cmd.arity == -2 {
        Vec::new()
    } else {
        spec.redis_flags().collect()
    };
    ctx.out.set(flags.len());
    for f in flags {
        ctx.out.simple(f);
    }
    let (first, last, step) = spec.legacy_range();
    ctx.out.int(first);
    ctx.out.int(last);
    ctx.out.int(step);
    let cats = acl_categories(cmd, sub);
    ctx.out.set(cats.len());
    for c in &cats {
        ctx.out.simple(c);
    }
    ctx.out.array(spec.tips.len());
    for tip in spec.tips {
        ctx.out.simple(tip);
    }
    ctx.out.array(spec.keys.len());
    for key in spec.keys {
        key_spec(ctx, spec, key);
    }
    if sub.is_some() {
        ctx.out.array(0);
    } else {
        ctx.out.array(cmd.subcommands.len());
        for s in cmd.subcommands {
            command_info(ctx, cmd, Some(s));
        }
    }
}

/// One command's `COMMAND DOCS` entry (name, then a map), its subcommands nested as Redis does.
fn command_docs(ctx: &mut Ctx<'_>, name: &str, spec: &CommandSpec, group: &str) {
    ctx.out.bulk(name.as_bytes());
    let subs = !spec.subcommands.is_empty();
    ctx.out.map(4 + usize::from(subs));
    ctx.out.bulk(b"summary");
    ctx.out.bulk(spec.summary.as_bytes());
    ctx.out.bulk(b"since");
    ctx.out.bulk(spec.since.as_bytes());
    ctx.out.bulk(b"group");
    ctx.out.bulk(group.as_bytes());
    ctx.out.bulk(b"complexity");
    ctx.out.bulk(spec.complexity.as_bytes());
    if subs {
        ctx.out.bulk(b"subcommands");
        ctx.out.map(spec.subcommands.len());
        for s in spec.subcommands {
            command_docs(ctx, &format!("{name}|{}", s.name), s, group);
        }
    }
}

/// `COMMAND GETKEYS` and `GETKEYSANDFLAGS`: the keys of the request in `args[2..]`, with Redis's
/// errors for an unknown command, a wrong argument count, or a command without keys.
fn command_getkeys(ctx: &mut Ctx<'_>, args: Args<'_>, with_flags: bool) -> CmdResult {
    let request: Vec<&[u8]> = args.iter_from(2).collect();
    let Some((_, cmd)) = lookup(request[0]) else {
        return Err("ERR Invalid command specified".into());
    };
    let spec = if cmd.subcommands.is_empty() || request.len() < 2 {
        cmd.spec
    } else {
        cmd.subcommand(request[1])
            .ok_or(Error::from("ERR Invalid command specified"))?
    };
    if !spec.arity_ok(request.len()) {
        return Err("ERR Invalid number of arguments specified for command".into());
    }
    let keys: Vec<usize> = dcache_protocol::commands::keys(cmd.spec, &request[..]).collect();
    if keys.is_empty() {
        return Err("ERR The command has no key arguments".into());
    }
    ctx.out.array(keys.len());
    for i in keys {
        if with_flags {
            ctx.out.array(2);
            ctx.out.bulk(request[i]);
            let flags = key_flags(spec);
            ctx.out.set(flags.len());
            for f in flags {
                ctx.out.simple(f);
            }
        } else {
            ctx.out.bulk(request[i]);
        }
    }
    Ok(())
}

pub fn command(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 1 {
        ctx.out.array(table().len());
        for cmd in table() {
            command_info(ctx, cmd, None);
        }
        return Ok(());
    }
    let sub = args.get(1);
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if args.len() == 2 => ctx.out.int(table().len() as i64),
        b"LIST" => {
            // FILTERBY is not supported: every name.
            if args.len() != 2 {
                return Err(SYNTAX.into());
            }
            ctx.out.array(table().len());
            for cmd in table() {
                ctx.out.bulk(cmd.name.as_bytes());
            }
        }
        b"INFO" => {
            if args.len() == 2 {
                ctx.out.array(table().len());
                for cmd in table() {
                    command_info(ctx, cmd, None);
                }
            } else {
                ctx.out.array(args.len() - 2);
                for name in args.iter_from(2) {
                    match lookup(name) {
                        Some((_, cmd)) => command_info(ctx, cmd, None),
                        None => ctx.out.null_array(),
                    }
                }
            }
        }
        b"DOCS" => {
            let cmds: Vec<&Command> = if args.len() == 2 {
                table().iter().collect()
            } else {
                args.iter_from(2)
                    .filter_map(|n| lookup(n).map(|(_, c)| c))
                    .collect()
            };
            ctx.out.map(cmds.len());
            for cmd in cmds {
                command_docs(ctx, cmd.name, cmd.spec, cmd.group);
            }
        }
        b"GETKEYS" | b"GETKEYSANDFLAGS" if args.len() >= 4 => {
            command_getkeys(ctx, args, sub.len() > b"GETKEYS".len())?;
        }
        b"HELP" if args.len() == 2 => help(
            &mut ctx.out,
            &[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
                "GETKEYSANDFLAGS <full-command>",
                "    Return the keys and the access flags from a full command.",
                "INFO [<command-name> ...]",
                "    Return details about the given commands, or all of them.",
                "LIST",
                "    Return the names of all commands.",
            ],
        ),
        b"COUNT" | b"GETKEYS" | b"GETKEYSANDFLAGS" | b"HELP" => {
            return Err(subcommand_arity("command", sub));
        }
        _ => return Err(unknown_subcommand(sub, "command")),
    }
    Ok(())
}

pub fn info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sections: Vec<String> = args
        .iter_from(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = crate::info::render(ctx.shared, &sections, ctx.now);
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// Settings that CONFIG GET shows. The second field tells whether CONFIG SET may change it.
const PARAMETERS: &[(&str, bool)] = &[
    ("bind", false),
    ("port", false),
    ("maxmemory", true),
    ("maxmemory-policy", true),
    ("requirepass", true),
    ("protected-mode", true),
    ("tls-port", false),
    ("tls-cert-file", false),
    ("tls-key-file", false),
    ("tls-ca-cert-file", false),
    ("tls-auth-clients", false),
    ("proto-max-bulk-len", true),
    ("client-query-buffer-limit", true),
    ("client-output-buffer-limit", true),
    ("maxclients", true),
    ("hz", true),
    ("tracking-table-max-keys", true),
    ("hll-sparse-max-bytes", true),
    ("hash-max-listpack-entries", true),
    ("hash-max-listpack-value", true),
    ("hash-max-ziplist-entries", true),
    ("hash-max-ziplist-value", true),
    ("zset-max-listpack-entries", true),
    ("zset-max-listpack-value", true),
    ("zset-max-ziplist-entries", true),
    ("zset-max-ziplist-value", true),
    ("threads", false),
    ("shards", false),
    ("max-args", true),
    ("node-id", false),
    ("databases", false),
    ("save", false),
    ("appendonly", false),
    ("timeout", true),
    ("busy-reply-threshold", true),
    ("lua-time-limit", true),
    ("list-max-listpack-size", true),
    ("list-max-ziplist-size", true),
    ("cluster-enabled", false),
    ("cluster-port", false),
    ("cluster-node-timeout", false),
    ("dir", false),
    ("migration-rate", false),
    ("set-max-intset-entries", true),
    ("set-max-listpack-entries", true),
    ("set-max-listpack-value", true),
    ("replication-deltas", true),
];

fn parameter_value(config: &crate::config::NodeConfig, name: &str) -> String {
    match name {
        "bind" => config.bind.clone(),
        "port" => config.port.to_string(),
        "maxmemory" => config.maxmemory.0.to_string(),
        "maxmemory-policy" => config.maxmemory_policy.clone(),
        "requirepass" => config.requirepass.clone(),
        "protected-mode" => config.protected_mode.to_string(),
        "replication-deltas" => config.replication_deltas.to_string(),
        "tls-port" => config.tls_port.to_string(),
        "tls-cert-file" => config.tls_cert_file.clone(),
        "tls-key-file" => config.tls_key_file.clone(),
        "tls-ca-cert-file" => config.tls_ca_cert_file.clone(),
        "tls-auth-clients" => config.tls_auth_clients.to_string(),
        "proto-max-bulk-len" => config.proto_max_bulk_len.0.to_string(),
        "client-query-buffer-limit" => config.client_query_buffer_limit.0.to_string(),
        "maxclients" => config.maxclients.to_string(),
        "hz" => config.hz.to_string(),
        "tracking-table-max-keys" => config.tracking_table_max_keys.to_string(),
        "hll-sparse-max-bytes" => config.hll_sparse_max_bytes.0.to_string(),
        "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
            config.hash_max_listpack_entries.to_string()
        }
        "hash-max-listpack-value" | "hash-max-ziplist-value" => {
            config.hash_max_listpack_value.to_string()
        }
        "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
            config.zset_max_listpack_entries.to_string()
        }
        "zset-max-listpack-value" | "zset-max-ziplist-value" => {
            config.zset_max_listpack_value.to_string()
        }
        "threads" => config.threads.to_string(),
        "shards" => config.shards.to_string(),
        "max-args" => config.max_args.to_string(),
        "node-id" => config.node_id.to_string(),
        "databases" => "1".into(),
        "appendonly" => "no".into(),
        "timeout" => config.timeout.to_string(),
        "busy-reply-threshold" | "lua-time-limit" => config.busy_reply_threshold.to_string(),
        "list-max-listpack-size" | "list-max-ziplist-size" => {
            config.list_max_listpack_size.to_string()
        }
        "cluster-enabled" => config.cluster_enabled.to_string(),
        "cluster-port" => config.bus_port().to_string(),
        "cluster-node-timeout" => config.cluster_node_timeout.to_string(),
        "dir" => config.dir.clone(),
        "migration-rate" => config.migration_rate.0.to_string(),
        "client-output-buffer-limit" => config.client_output_buffer_limit.to_string(),
        _ => String::new(),
    }
}

/// Settings that live in the store rather than the node's config: the values' encodings.
fn store_parameter(store: &dcache_store::Store, name: &str) -> Option<String> {
    let sets = store.set_limits();
    Some(
        match name {
            "set-max-intset-entries" => sets.max_intset_entries,
            "set-max-listpack-entries" => sets.max_listpack_entries,
            "set-max-listpack-value" => sets.max_listpack_value,
            _ => return None,
        }
        .to_string(),
    )
}

/// Redis's range for the encodings' limits (`size_t` settings up to `LONG_MAX`).
const ENCODING_LIMIT: RangeInclusive<u64> = 0..=i64::MAX as u64;

/// One validated `CONFIG SET` change, applied only once every pair of the command has passed.
enum Change {
    Maxmemory(ByteSize),
    Policy(PolicyName),
    Requirepass(String),
    ProtoMaxBulkLen(ByteSize),
    ClientQueryBufferLimit(ByteSize),
    Maxclients(usize),
    Hz(u32),
    TrackingTableMaxKeys(usize),
    HllSparseMaxBytes(ByteSize),
    HashEntries(usize),
    HashValue(usize),
    ZsetEntries(usize),
    ZsetValue(usize),
    MaxArgs(usize),
    /// The classes the value names, each to change alone.
    ClientOutputBufferLimit(String),
    Timeout(u64),
    BusyReplyThreshold(u64),
    ListMaxListpackSize(i64),
    ProtectedMode(crate::config::YesNo),
    ReplicationDeltas(crate::config::YesNo),
    /// One of the `set-max-*` settings, by name.
    SetLimit(&'static str, usize),
}

/// Parses a memory value the way Redis does (no sign, no fraction) and checks it against `range`.
fn memory_in(text: &str, range: Option<&RangeInclusive<u64>>) -> Result<ByteSize, String> {
    if text.starts_with(['-', '+']) {
        return Err("argument must be a memory value".to_owned());
    }
    let bytes = text
        .parse::<ByteSize>()
        .map_err(|_| "argument must be a memory value".to_owned())?;
    match range {
        Some(range) if !range.contains(&(bytes.0 as u64)) => Err(ranges::message(range)),
        _ => Ok(bytes),
    }
}

/// Parses an integer the way Redis's numeric settings do and checks it against `range`: a
/// negative or huge number is out of range, text is not an integer.
fn integer_in(text: &str, range: &RangeInclusive<u64>) -> Result<u64, String> {
    let n = dcache_protocol::request::parse_i64(text.as_bytes())
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_owned())?;
    u64::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ranges::message(range))
}

fn parse_parameter(name: &str, value: &[u8]) -> Result<Change, String> {
    let text = String::from_utf8_lossy(value).into_owned();
    Ok(match name {
        "maxmemory" => Change::Maxmemory(memory_in(&text, None)?),
        "maxmemory-policy" => Change::Policy(text.parse().map_err(|_| {
            format!(
                "argument(s) must be one of the following: {}",
                PolicyName::ALL.join(", ")
            )
        })?),
        "requirepass" => Change::Requirepass(text),
        "protected-mode" => Change::ProtectedMode(text.parse()?),
        "replication-deltas" => Change::ReplicationDeltas(text.parse()?),
        "proto-max-bulk-len" => {
            Change::ProtoMaxBulkLen(memory_in(&text, Some(&ranges::PROTO_MAX_BULK_LEN))?)
        }
        "client-query-buffer-limit" => Change::ClientQueryBufferLimit(memory_in(
            &text,
            Some(&ranges::CLIENT_QUERY_BUFFER_LIMIT),
        )?),
        "maxclients" => Change::Maxclients(integer_in(&text, &ranges::MAXCLIENTS)? as usize),
        "hz" => Change::Hz(integer_in(&text, &ranges::HZ)? as u32),
        "tracking-table-max-keys" => Change::TrackingTableMaxKeys(integer_in(
            &text,
            &ranges::TRACKING_TABLE_MAX_KEYS,
        )? as usize),
        "hll-sparse-max-bytes" => {
            Change::HllSparseMaxBytes(memory_in(&text, Some(&ranges::HLL_SPARSE_MAX_BYTES))?)
        }
        // As in Redis, the entries are a count and the value's length a memory value ("1kb").
        "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
            Change::HashEntries(integer_in(&text, &ranges::LISTPACK)? as usize)
        }
        "hash-max-listpack-value" | "hash-max-ziplist-value" => {
            Change::HashValue(memory_in(&text, Some(&ranges::LISTPACK))?.0)
        }
        "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
            Change::ZsetEntries(integer_in(&text, &ranges::LISTPACK)? as usize)
        }
        "zset-max-listpack-value" | "zset-max-ziplist-value" => {
            Change::ZsetValue(memory_in(&text, Some(&ranges::LISTPACK))?.0)
        }
        "max-args" => Change::MaxArgs(integer_in(&text, &ranges::MAX_ARGS)? as usize),
        "client-output-buffer-limit" => {
            // Classes are independent: a value valid over the defaults is valid over any.
            OutputBufferLimits::default().with(&text)?;
            Change::ClientOutputBufferLimit(text)
        }
        "timeout" => Change::Timeout(integer_in(&text, &ranges::TIMEOUT)?),
        "busy-reply-threshold" | "lua-time-limit" => {
            Change::BusyReplyThreshold(integer_in(&text, &ranges::BUSY_REPLY_THRESHOLD)?)
        }
        // Plain integers, all three, as in Redis (`set-max-listpack-value` too: unlike the hash's
        // and the sorted set's, it takes no "1kb").
        "set-max-intset-entries" | "set-max-listpack-entries" | "set-max-listpack-value" => {
            let name = PARAMETERS
                .iter()
                .find(|(p, _)| *p == name)
                .map(|(p, _)| *p)
                .expect("listed");
            Change::SetLimit(name, integer_in(&text, &ENCODING_LIMIT)? as usize)
        }
        "list-max-listpack-size" | "list-max-ziplist-size" => {
            let n = dcache_protocol::request::parse_i64(text.as_bytes())
                .ok_or_else(|| "argument couldn't be parsed into an integer".to_owned())?;
            if !ranges::LIST_MAX_LISTPACK_SIZE.contains(&n) {
                return Err("argument must be between -2147483648 and 2147483647 inclusive".into());
            }
            Change::ListMaxListpackSize(n)
        }
        _ => return Err("can't set immutable config".into()),
    })
}

fn apply(ctx: &Ctx<'_>, change: Change) {
    let store = &ctx.shared.store;
    match change {
        Change::Maxmemory(bytes) => {
            ctx.shared.update_config(|c| c.maxmemory = bytes);
            store.set_maxmemory(bytes.0);
        }
        Change::Policy(policy) => {
            ctx.shared
                .update_config(|c| c.maxmemory_policy = policy.to_string());
            store.set_policy(policy);
        }
        Change::Requirepass(password) => ctx.shared.update_config(|c| c.requirepass = password),
        Change::ProtoMaxBulkLen(bytes) => {
            ctx.shared.update_config(|c| c.proto_max_bulk_len = bytes)
        }
        Change::ProtectedMode(on) => ctx.shared.update_config(|c| c.protected_mode = on),
        Change::ReplicationDeltas(on) => {
            ctx.shared.update_config(|c| c.replication_deltas = on);
            crate::replicate::follow_deltas(ctx.shared);
        }
        Change::ClientQueryBufferLimit(bytes) => ctx
            .shared
            .update_config(|c| c.client_query_buffer_limit = bytes),
        Change::Maxclients(n) => ctx.shared.update_config(|c| c.maxclients = n),
        Change::Hz(n) => ctx.shared.update_config(|c| c.hz = n),
        Change::TrackingTableMaxKeys(n) => {
            ctx.shared.update_config(|c| c.tracking_table_max_keys = n);
            ctx.shared.tracking.set_max_keys(n);
        }
        Change::HllSparseMaxBytes(bytes) => {
            ctx.shared.update_config(|c| c.hll_sparse_max_bytes = bytes)
        }
        Change::HashEntries(n) => ctx
            .shared
            .update_config(|c| c.hash_max_listpack_entries = n),
        Change::HashValue(n) => ctx.shared.update_config(|c| c.hash_max_listpack_value = n),
        Change::ZsetEntries(n) => ctx
            .shared
            .update_config(|c| c.zset_max_listpack_entries = n),
        Change::ZsetValue(n) => ctx.shared.update_config(|c| c.zset_max_listpack_value = n),
        Change::MaxArgs(n) => ctx.shared.update_config(|c| c.max_args = n),
        Change::ClientOutputBufferLimit(text) => {
            let limits = ctx.shared.update_config(|c| {
                c.client_output_buffer_limit = c
                    .client_output_buffer_limit
                    .with(&text)
                    .expect("checked when parsed");
                c.client_output_buffer_limit
            });
            // Pushes check the limit as they arrive: a subscriber that sends nothing has it now.
            for client in ctx.shared.clients() {
                let class = limits.for_client(client.subscriptions.active());
                client.mailbox.set_limit(class.hard);
            }
        }
        Change::Timeout(seconds) => ctx.shared.update_config(|c| c.timeout = seconds),
        Change::BusyReplyThreshold(ms) => ctx.shared.update_config(|c| c.busy_reply_threshold = ms),
        Change::SetLimit(name, n) => {
            let mut limits = store.set_limits();
            match name {
                "set-max-intset-entries" => limits.max_intset_entries = n,
                "set-max-listpack-entries" => limits.max_listpack_entries = n,
                _ => limits.max_listpack_value = n,
            }
            store.set_set_limits(limits);
        }
        Change::ListMaxListpackSize(n) => {
            ctx.shared.update_config(|c| c.list_max_listpack_size = n);
            dcache_store::set_max_listpack_size(n);
        }
    }
}

pub fn config(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    match sub.to_ascii_uppercase().as_slice() {
        b"GET" => {
            if args.len() < 3 {
                return Err(subcommand_arity("config", sub));
            }
            let config = ctx.shared.config();
            let matched: Vec<&str> = PARAMETERS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| {
                    args.iter_from(2)
                        .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
                })
                .collect();
            ctx.out.map(matched.len());
            for name in matched {
                ctx.out.bulk(name.as_bytes());
                let value = store_parameter(&ctx.shared.store, name)
                    .unwrap_or_else(|| parameter_value(&config, name));
                ctx.out.bulk(value.as_bytes());
            }
        }
        b"SET" => {
            if args.len() < 4 || !args.len().is_multiple_of(2) {
                return Err(subcommand_arity("config", sub));
            }
            for i in (2..args.len()).step_by(2) {
                let name = String::from_utf8_lossy(args.get(i)).to_ascii_lowercase();
                if !PARAMETERS.iter().any(|(p, _)| *p == name) {
                    return Err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )
                    .into());
                }
            }
            // Redis's CONFIG SET is all or nothing: every pair is checked before any applies.
            let mut changes = Vec::with_capacity(args.len() / 2);
            let mut seen: Vec<String> = Vec::with_capacity(args.len() / 2);
            for i in (2..args.len()).step_by(2) {
                let name = String::from_utf8_lossy(args.get(i)).to_ascii_lowercase();
                let failed = |e: String| {
                    Error::from(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                    ))
                };
                if seen.contains(&name) {
                    return Err(failed("duplicate parameter".into()));
                }
                changes.push(parse_parameter(&name, args.get(i + 1)).map_err(failed)?);
                seen.push(name);
            }
            for change in changes {
                apply(ctx, change);
            }
            ctx.out.ok();
        }
        b"RESETSTAT" => {
            ctx.shared.stats.reset();
            ctx.shared.store.reset_stats();
            ctx.shared.ops.lock().clear();
            ctx.out.ok();
        }
        b"HELP" => help(
            &mut ctx.out,
            &[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
            ],
        ),
        _ => return Err(unknown_subcommand(sub, "config")),
    }
    Ok(())
}

pub fn dbsize(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.out.int(ctx.shared.store.len() as i64);
    Ok(())
}

pub fn flush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match args.len() {
        1 => {}
        2 if is(args.get(1), "ASYNC") || is(args.get(1), "SYNC") => {}
        _ => return Err(SYNTAX.into()),
    }
    ctx.shared.store.clear();
    ctx.shared.tracking.invalidate_all(ctx.shared);
    ctx.out.ok();
    Ok(())
}

pub fn time(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(i64::from(now.subsec_micros()));
    Ok(())
}

pub fn memory(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    match sub.to_ascii_uppercase().as_slice() {
        b"USAGE" => {
            match args.len() {
                3 => {}
                // Redis refuses a negative sample count as a syntax error; 0 means "all", and
                // dcache measures every value exactly anyway, so no count sizes any work.
                5 if is(args.get(3), "SAMPLES") => {
                    if int_arg(args.get(4))? < 0 {
                        return Err(SYNTAX.into());
                    }
                }
                _ => return Err(SYNTAX.into()),
            }
            let key = ctx.key(args.get(2));
            let usage = ctx
                .lock(&key)
                .get(&key, ctx.now, Lookup::Peek)
                .map(|entry| entry.memory_usage());
            match usage {
                Some(bytes) => ctx.out.int(bytes as i64),
                None => ctx.out.null(),
            }
        }
        b"HELP" => help(
            &mut ctx.out,
            &[
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value.",
            ],
        ),
        _ => return Err(unknown_subcommand(sub, "memory")),
    }
    Ok(())
}

/// Redis's encoding names: small values in compact encodings, larger ones in general ones.
fn encoding(value: Value<'_>) -> &'static str {
    match value {
        Value::Str(s) if s.len() <= 20 && dcache_protocol::request::parse_i64(s).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::Hash(h) if h.is_listpack() => "listpack",
        Value::Hash(_) => "hashtable",
        Value::List(l) => l.encoding(),
        Value::Set(s) => s.encoding().name(),
        Value::ZSet(z) if z.is_listpack() => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}

pub fn object(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if is(sub, "HELP") {
        help(
            &mut ctx.out,
            &[
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used to store the value of <key>.",
                "FREQ <key>",
                "    Return the access frequency of <key> (LFU policies only).",
                "IDLETIME <key>",
                "    Return the idle time of <key> in seconds (not under LFU policies).",
                "REFCOUNT <key>",
                "    Return the reference count of <key>'s value.",
            ],
        );
        return Ok(());
    }
    if args.len() != 3 {
        return Err(subcommand_arity("object", sub));
    }
    let key = ctx.key(args.get(2));
    let policy = ctx.shared.store.settings().policy.kind;
    let mut shard = ctx.lock(&key);
    match sub.to_ascii_uppercase().as_slice() {
        b"ENCODING" => match shard.get(&key, ctx.now, Lookup::Peek) {
            Some(entry) => ctx.out.bulk(encoding(entry.value()).as_bytes()),
            None => ctx.out.null(),
        },
        b"REFCOUNT" => match shard.get(&key, ctx.now, Lookup::Peek) {
            Some(_) => ctx.out.int(1),
            None => ctx.out.null(),
        },
        b"IDLETIME" => {
            if policy == PolicyKind::Lfu {
                return Err("ERR An LRU maxmemory policy is not selected, access time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into());
            }
            match shard.get(&key, ctx.now, Lookup::Peek) {
                Some(entry) => ctx.out.int(entry.idle_seconds(ctx.now) as i64),
                None => ctx.out.null(),
            }
        }
        b"FREQ" => {
            let not_lfu = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
            // The policies that count accesses; SIEVE's one bit and LRU's order are not counts.
            if !matches!(
                policy,
                PolicyKind::Lfu | PolicyKind::S3Fifo | PolicyKind::WTinyLfu
            ) {
                return Err(not_lfu.into());
            }
            match shard.frequency(&key, ctx.now) {
                Some(Some(freq)) => ctx.out.int(i64::from(freq)),
                Some(None) => return Err(not_lfu.into()),
                None => ctx.out.null(),
            }
        }
        _ => return Err(unknown_subcommand(sub, "object")),
    }
    Ok(())
}
