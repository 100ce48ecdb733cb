//! The command table: every command's name, arity, flags, key positions and documentation, in one
//! place, read by the server (dispatch, admission, ACL, `COMMAND`) and by clients (routing).
//!
//! The table holds no behaviour: the server pairs each row with its handler by name. Key
//! positions are a list of [`KeySpec`]s, read by [`keys`], which also finds the keys of a
//! subcommand (`MEMORY USAGE key`, `OBJECT ENCODING key`) in the container's
//! [`CommandSpec::subcommands`].
//!
//! Arity follows Redis: `n` means exactly `n` arguments counting the name, `-n` at least `n`.

use std::sync::LazyLock;

use crate::Args;

/// Changes data.
pub const WRITE: u16 = 1;
/// Only reads data.
pub const READONLY: u16 = 1 << 1;
/// May grow memory: refused with `-OOM` when the budget is spent and nothing can be evicted.
pub const DENYOOM: u16 = 1 << 2;
/// Administrative.
pub const ADMIN: u16 = 1 << 3;
/// Allowed before `AUTH`.
pub const NO_AUTH: u16 = 1 << 4;
/// Constant or logarithmic time.
pub const FAST: u16 = 1 << 5;
/// About the connection rather than data.
pub const CONNECTION: u16 = 1 << 6;
/// Pub/sub: its channel arguments are routed like keys (the sharded forms) but name no data.
pub const PUBSUB: u16 = 1 << 7;

/// The flags Redis's `COMMAND INFO` knows, with its names for them. `CONNECTION` is not among
/// them: Redis has it only as an ACL category.
pub const REDIS_FLAGS: [(u16, &str); 7] = [
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (NO_AUTH, "no_auth"),
    (FAST, "fast"),
    (PUBSUB, "pubsub"),
];

/// Where a command's key arguments are. A command may have several (a destination key, then a
/// counted list of sources); [`keys`] yields their positions in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// Keys at `first`, `first + step`, … up to `last`; a negative `last` counts from the end
    /// (`-1` is the last argument, `-2` the one before).
    Range {
        first: usize,
        last: isize,
        step: usize,
    },
    /// Argument `at` holds a count `n`, followed by `n` keys from `at + 1`, one every `step`
    /// arguments (`EVAL script numkeys key…`, `ZUNIONSTORE dst numkeys key…`, `LMPOP numkeys key…`).
    Counted { at: usize, step: usize },
}

/// One command (or one subcommand of a container such as `CLIENT`).
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case; a subcommand's own name (`usage`), without its container's.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u16,
    pub keys: &'static [KeySpec],
    /// Redis's command group (`string`, `generic`, …); a subcommand's is its container's.
    pub group: &'static str,
    /// The Redis version that introduced the command, as `COMMAND DOCS` reports it.
    pub since: &'static str,
    pub complexity: &'static str,
    pub summary: &'static str,
    /// Redis's hints for clients (`request_policy:all_shards`, `response_policy:agg_sum`,
    /// `nondeterministic_output`, …), as `COMMAND INFO` shows them; a cluster client reads the
    /// policies to know which keyless commands go to every node and how to merge the replies.
    pub tips: &'static [&'static str],
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// The subcommand named `name` (any case), if this is a container that has it.
    #[must_use]
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands
            .iter()
            .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
    }

    /// Whether some key positions depend on argument values (a counted list): what Redis calls
    /// `movablekeys`, the sign that [`legacy_range`](Self::legacy_range) alone cannot find them.
    #[must_use]
    pub fn movable_keys(&self) -> bool {
        self.keys
            .iter()
            .any(|k| matches!(k, KeySpec::Counted { .. }))
    }

    /// The `(first, last, step)` triple of `COMMAND INFO`, which older clients route by: the
    /// first range, or `(0, 0, 0)` when there is none (then `movablekeys` or the subcommands
    /// tell the rest).
    #[must_use]
    pub fn legacy_range(&self) -> (i64, i64, i64) {
        match self.keys.first() {
            Some(&KeySpec::Range { first, last, step }) => (first as i64, last as i64, step as i64),
            _ => (0, 0, 0),
        }
    }

    /// Whether `argc` arguments (the name included) satisfy the arity.
    #[must_use]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Redis's flag names for `COMMAND INFO`.
    pub fn redis_flags(&self) -> impl Iterator<Item = &'static str> + '_ {
        REDIS_FLAGS
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, name)| *name)
            .chain(self.movable_keys().then_some("movablekeys"))
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a table row per call: positional fields keep the table readable"
)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u16,
    keys: &'static [KeySpec],
    group: &'static str,
    since: &'static str,
    complexity: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group,
        since,
        complexity,
        summary,
        tips: &[],
        subcommands: &[],
    }
}

impl CommandSpec {
    const fn with_subcommands(mut self, subcommands: &'static [CommandSpec]) -> Self {
        self.subcommands = subcommands;
        self
    }

    const fn with_tips(mut self, tips: &'static [&'static str]) -> Self {
        self.tips = tips;
        self
    }

    /// The value of the tip `name:value` (`request_policy` → `all_shards`), if the spec has it.
    #[must_use]
    pub fn tip(&self, name: &str) -> Option<&'static str> {
        self.tips
            .iter()
            .find_map(|t| t.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
    }
}

const NONE: &[KeySpec] = &[];
const FIRST: &[KeySpec] = &[KeySpec::Range {
    first: 1,
    last: 1,
    step: 1,
}];
const FIRST_TWO: &[KeySpec] = &[KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
}];
const ALL: &[KeySpec] = &[KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
}];
const PAIRS: &[KeySpec] = &[KeySpec::Range {
    first: 1,
    last: -1,
    step: 2,
}];
/// `numkeys key…` from the first argument (`ZUNION numkeys key…`, `ZMPOP numkeys key…`).
const COUNTED_FIRST: &[KeySpec] = &[KeySpec::Counted { at: 1, step: 1 }];
/// A destination, then `numkeys key…` (`ZUNIONSTORE dst numkeys key…`).
const DEST_COUNTED: &[KeySpec] = &[
    KeySpec::Range {
        first: 1,
        last: 1,
        step: 1,
    },
    KeySpec::Counted { at: 2, step: 1 },
];
/// The key after a subcommand's name (`OBJECT ENCODING key`).
const SECOND: &[KeySpec] = &[KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
}];

#[rustfmt::skip]
const ACL_SUBS: &[CommandSpec] = &[
    spec("cat", -2, 0, NONE, "server", "6.0.0", "O(1)", "Lists the ACL categories, or the commands in one."),
    spec("deluser", -3, ADMIN, NONE, "server", "6.0.0", "O(1) amortized", "Deletes users."),
    spec("getuser", 3, ADMIN, NONE, "server", "6.0.0", "O(N)", "Returns a user's rules."),
    spec("help", 2, 0, NONE, "server", "6.0.0", "O(1)", "Describes the subcommands."),
    spec("list", 2, ADMIN, NONE, "server", "6.0.0", "O(N) where N is the number of users", "Lists every user's rules."),
    spec("setuser", -3, ADMIN, NONE, "server", "6.0.0", "O(N) where N is the number of rules", "Creates a user or changes its rules."),
    spec("users", 2, ADMIN, NONE, "server", "6.0.0", "O(N) where N is the number of users", "Lists the user names."),
    spec("whoami", 2, 0, NONE, "server", "6.0.0", "O(1)", "Returns the connection's user."),
];

#[rustfmt::skip]
const CLIENT_SUBS: &[CommandSpec] = &[
    spec("caching", 3, CONNECTION, NONE, "connection", "6.0.0", "O(1)", "Tells the node whether the next command's keys are tracked (OPTIN and OPTOUT modes)."),
    spec("getname", 2, CONNECTION, NONE, "connection", "2.6.9", "O(1)", "Returns the connection's name."),
    spec("getredir", 2, CONNECTION, NONE, "connection", "6.0.0", "O(1)", "Returns the id of the client that receives this connection's invalidations."),
    spec("help", 2, CONNECTION, NONE, "connection", "5.0.0", "O(1)", "Describes the subcommands."),
    spec("id", 2, CONNECTION, NONE, "connection", "5.0.0", "O(1)", "Returns the connection's id."),
    spec("info", 2, CONNECTION, NONE, "connection", "6.2.0", "O(1)", "Describes this connection.").with_tips(&["nondeterministic_output"]),
    spec("kill", -3, ADMIN | CONNECTION, NONE, "connection", "2.4.0", "O(N) where N is the number of connections", "Closes connections."),
    spec("list", -2, ADMIN | CONNECTION, NONE, "connection", "2.4.0", "O(N) where N is the number of connections", "Describes every connection.").with_tips(&["nondeterministic_output"]),
    spec("setinfo", 4, CONNECTION, NONE, "connection", "7.2.0", "O(1)", "Records the client library's name or version."),
    spec("setname", 3, CONNECTION, NONE, "connection", "2.6.9", "O(1)", "Names the connection."),
    spec("tracking", -3, CONNECTION, NONE, "connection", "6.0.0", "O(1). Some options may introduce additional complexity.", "Turns client-side caching's key tracking on or off for the connection."),
    spec("trackinginfo", 2, CONNECTION, NONE, "connection", "6.2.0", "O(1)", "Describes this connection's tracking: flags, redirect, prefixes."),
    spec("unblock", -3, ADMIN | CONNECTION, NONE, "connection", "5.0.0", "O(log N) where N is the number of client connections", "Unblocks a client blocked by a blocking command."),
];

/// CLUSTER's subcommands, including those the cluster protocol brings.
#[rustfmt::skip]
const CLUSTER_SUBS: &[CommandSpec] = &[
    spec("apply", 6, ADMIN, NONE, "cluster", "dcache", "O(N) where N is the number of effects", "Applies a batch of a peer's replication stream (sent by the node that replicates to this one)."),
    spec("countkeysinslot", 3, 0, NONE, "cluster", "3.0.0", "O(1)", "Counts the keys of a slot on this node."),
    spec("forget", 3, ADMIN, NONE, "cluster", "3.0.0", "O(1)", "Removes a node from the cluster."),
    spec("getkeysinslot", 4, 0, NONE, "cluster", "3.0.0", "O(N) where N is the number of keys returned", "Lists keys of a slot on this node.").with_tips(&["nondeterministic_output"]),
    spec("help", 2, 0, NONE, "cluster", "5.0.0", "O(1)", "Describes the subcommands."),
    spec("import", 3, ADMIN, NONE, "cluster", "dcache", "O(N) where N is the number of records", "Applies a slot migration's records (sent by the node that moves the slot)."),
    spec("importslot", 3, ADMIN, NONE, "cluster", "dcache", "O(N) where N is the number of keys in the slot", "Drops this node's keys of a slot it does not serve, before a migration's records for it."),
    spec("info", 2, 0, NONE, "cluster", "3.0.0", "O(1)", "Describes the cluster's state.").with_tips(&["nondeterministic_output"]),
    spec("keyslot", 3, 0, NONE, "cluster", "3.0.0", "O(N) where N is the number of bytes in the key", "Returns the hash slot of a key."),
    spec("leave", 2, ADMIN, NONE, "cluster", "dcache", "O(1)", "Hands this node's slots to the others, then leaves the cluster and stops."),
    spec("meet", -4, ADMIN, NONE, "cluster", "3.0.0", "O(1)", "Adds a node to the cluster."),
    spec("myid", 2, 0, NONE, "cluster", "3.0.0", "O(1)", "Returns this node's id."),
    spec("myshardid", 2, 0, NONE, "cluster", "7.2.0", "O(1)", "Returns this node's shard id."),
    spec("nodes", 2, 0, NONE, "cluster", "3.0.0", "O(N) where N is the number of nodes", "Describes every node, in cluster config format.").with_tips(&["nondeterministic_output"]),
    spec("publish", 4, ADMIN | PUBSUB, NONE, "cluster", "dcache", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client)", "Delivers another member's PUBLISH to this node's subscribers (not sent on)."),
    spec("rebalance", 2, ADMIN, NONE, "cluster", "dcache", "O(1)", "Moves slots until every node serves its share."),
    spec("repair", 3, ADMIN, NONE, "cluster", "dcache", "O(N) where N is the number of effects", "Takes the newer state of keys that a quorum read found on other copies."),
    spec("set", -4, ADMIN, NONE, "cluster", "dcache", "O(1)", "Changes the cluster's replication settings: replicas, replication, sync-replicas, write-quorum, read-quorum."),
    spec("shards", 2, 0, NONE, "cluster", "7.0.0", "O(N) where N is the number of nodes", "Returns the slot ranges and nodes of each shard.").with_tips(&["nondeterministic_output"]),
    spec("versions", -3, ADMIN, NONE, "cluster", "dcache", "O(N) where N is the number of keys", "Returns the state of keys on this copy, with their versions, for a quorum read."),
    spec("spublish", 4, ADMIN | PUBSUB, NONE, "cluster", "dcache", "O(N) where N is the number of clients subscribed to the receiving shard channel", "Delivers an SPUBLISH of another copy of the channel's slot to this node's subscribers (not sent on)."),
    spec("slots", 2, 0, NONE, "cluster", "3.0.0", "O(N) where N is the number of nodes", "Returns the slot ranges and their nodes.").with_tips(&["nondeterministic_output"]),
];

#[rustfmt::skip]
const PUBSUB_SUBS: &[CommandSpec] = &[
    spec("channels", -2, PUBSUB, NONE, "pubsub", "2.8.0", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)", "Returns the active channels of this node.").with_tips(&["nondeterministic_output_order"]),
    spec("help", 2, 0, NONE, "pubsub", "6.2.0", "O(1)", "Describes the subcommands."),
    spec("numpat", 2, PUBSUB, NONE, "pubsub", "2.8.0", "O(1)", "Returns the number of unique patterns subscribed to on this node."),
    spec("numsub", -2, PUBSUB, NONE, "pubsub", "2.8.0", "O(N) for the NUMSUB subcommand, where N is the number of requested channels", "Returns the count of subscribers of channels on this node."),
    spec("shardchannels", -2, PUBSUB, NONE, "pubsub", "7.0.0", "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).", "Returns the active shard channels of this node.").with_tips(&["nondeterministic_output_order"]),
    spec("shardnumsub", -2, PUBSUB, NONE, "pubsub", "7.0.0", "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels", "Returns the count of subscribers of shard channels on this node."),
];

#[rustfmt::skip]
const COMMAND_SUBS: &[CommandSpec] = &[
    spec("count", 2, CONNECTION, NONE, "server", "2.8.13", "O(1)", "Returns the number of commands."),
    spec("docs", -2, CONNECTION, NONE, "server", "7.0.0", "O(N) where N is the number of commands to look up", "Documents commands.").with_tips(&["nondeterministic_output_order"]),
    spec("getkeys", -4, CONNECTION, NONE, "server", "2.8.13", "O(N) where N is the number of arguments to the command", "Returns the keys of a request."),
    spec("getkeysandflags", -4, CONNECTION, NONE, "server", "7.0.0", "O(N) where N is the number of arguments to the command", "Returns the keys of a request and how it uses them."),
    spec("help", 2, CONNECTION, NONE, "server", "5.0.0", "O(1)", "Describes the subcommands."),
    spec("info", -2, CONNECTION, NONE, "server", "2.8.13", "O(N) where N is the number of commands to look up", "Describes commands, or all of them.").with_tips(&["nondeterministic_output_order"]),
    spec("list", -2, CONNECTION, NONE, "server", "7.0.0", "O(N) where N is the number of commands", "Returns the command names.").with_tips(&["nondeterministic_output_order"]),
];

#[rustfmt::skip]
const CONFIG_SUBS: &[CommandSpec] = &[
    spec("get", -3, ADMIN, NONE, "server", "2.0.0", "O(N) where N is the number of parameters", "Returns parameters' values."),
    spec("help", 2, 0, NONE, "server", "5.0.0", "O(1)", "Describes the subcommands."),
    spec("resetstat", 2, ADMIN, NONE, "server", "2.0.0", "O(1)", "Resets the statistics INFO shows."),
    spec("set", -4, ADMIN, NONE, "server", "2.0.0", "O(N) where N is the number of parameters", "Changes parameters.").with_tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

#[rustfmt::skip]
const MEMORY_SUBS: &[CommandSpec] = &[
    spec("help", 2, 0, NONE, "server", "4.0.0", "O(1)", "Describes the subcommands."),
    spec("usage", -3, READONLY, SECOND, "server", "4.0.0", "O(1)", "Returns the bytes a key and its value take."),
];

#[rustfmt::skip]
const OBJECT_SUBS: &[CommandSpec] = &[
    spec("encoding", 3, READONLY, SECOND, "generic", "2.2.3", "O(1)", "Returns a value's internal encoding.").with_tips(&["nondeterministic_output"]),
    spec("freq", 3, READONLY, SECOND, "generic", "4.0.0", "O(1)", "Returns a key's access frequency counter (LFU policies).").with_tips(&["nondeterministic_output"]),
    spec("help", 2, 0, NONE, "generic", "6.2.0", "O(1)", "Describes the subcommands."),
    spec("idletime", 3, READONLY, SECOND, "generic", "2.2.3", "O(1)", "Returns the seconds since a key was last accessed.").with_tips(&["nondeterministic_output"]),
    spec("refcount", 3, READONLY, SECOND, "generic", "2.2.3", "O(1)", "Returns a value's reference count.").with_tips(&["nondeterministic_output"]),
];

/// `EVAL script numkeys key…`: the keys counted at argument 2.
const SCRIPT_KEYS: &[KeySpec] = &[KeySpec::Counted { at: 2, step: 1 }];

#[rustfmt::skip]
const SCRIPT_SUBS: &[CommandSpec] = &[
    spec("exists", -3, 0, NONE, "scripting", "2.6.0", "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).", "Determines whether server-side Lua scripts exist in the script cache.").with_tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
    spec("flush", -2, 0, NONE, "scripting", "2.6.0", "O(N) with N being the number of scripts in cache", "Removes all server-side Lua scripts from the script cache.").with_tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
    spec("help", 2, 0, NONE, "scripting", "5.0.0", "O(1)", "Describes the subcommands."),
    spec("kill", 2, 0, NONE, "scripting", "2.6.0", "O(1)", "Terminates a server-side Lua script during execution.").with_tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
    spec("load", 3, 0, NONE, "scripting", "2.6.0", "O(N) with N being the length in bytes of the script body.", "Loads a server-side Lua script to the script cache.").with_tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
];

/// Every command, in the order `COMMAND` lists them. A server serves exactly these.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    spec("ping", -1, FAST | CONNECTION, NONE, "connection", "1.0.0", "O(1)", "Returns the server's liveliness response.").with_tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("echo", 2, FAST | CONNECTION, NONE, "connection", "1.0.0", "O(1)", "Returns the given string."),
    spec("readonly", 1, FAST | CONNECTION, NONE, "cluster", "3.0.0", "O(1)", "Lets reads of this connection go to replicas."),
    spec("readwrite", 1, FAST | CONNECTION, NONE, "cluster", "3.0.0", "O(1)", "Sends reads of this connection to primaries again."),
    spec("asking", 1, FAST | CONNECTION, NONE, "cluster", "3.0.0", "O(1)", "Marks the next command as following an -ASK redirect."),
    spec("hello", -1, NO_AUTH | FAST | CONNECTION, NONE, "connection", "6.0.0", "O(1)", "Handshakes with the server: protocol version, authentication, name."),
    spec("auth", -2, NO_AUTH | FAST | CONNECTION, NONE, "connection", "1.0.0", "O(N) where N is the number of passwords defined for the user", "Authenticates the connection."),
    spec("select", 2, FAST | CONNECTION, NONE, "connection", "1.0.0", "O(1)", "Changes the selected database (only 0 exists)."),
    spec("quit", -1, NO_AUTH | FAST | CONNECTION, NONE, "connection", "1.0.0", "O(1)", "Closes the connection."),
    spec("reset", 1, NO_AUTH | FAST | CONNECTION, NONE, "connection", "6.2.0", "O(1)", "Resets the connection."),
    spec("acl", -2, 0, NONE, "server", "6.0.0", "Depends on subcommand", "ACL users: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT.").with_subcommands(ACL_SUBS),
    spec("client", -2, CONNECTION, NONE, "connection", "2.4.0", "Depends on subcommand", "Connection management: ID, SETNAME, GETNAME, LIST, INFO, SETINFO, KILL, UNBLOCK, TRACKING, CACHING, GETREDIR, TRACKINGINFO.").with_subcommands(CLIENT_SUBS),
    // transactions
    spec("multi", 1, FAST, NONE, "transactions", "1.2.0", "O(1)", "Starts a transaction."),
    spec("exec", 1, 0, NONE, "transactions", "1.2.0", "Depends on commands in the transaction", "Executes all commands in a transaction."),
    spec("discard", 1, FAST, NONE, "transactions", "2.0.0", "O(N), when N is the number of queued commands", "Discards a transaction."),
    spec("watch", -2, FAST, &[KeySpec::Range { first: 1, last: -1, step: 1 }], "transactions", "2.2.0", "O(1) for every key.", "Monitors changes to keys to determine the execution of a transaction."),
    spec("unwatch", 1, FAST, NONE, "transactions", "2.2.0", "O(1)", "Forgets about watched keys of a transaction."),
    // server
    spec("command", -1, CONNECTION, NONE, "server", "2.8.13", "O(N) where N is the total number of Redis commands", "Returns details about commands: COUNT, INFO, DOCS, LIST.").with_subcommands(COMMAND_SUBS).with_tips(&["nondeterministic_output_order"]),
    spec("info", -1, 0, NONE, "server", "1.0.0", "O(1)", "Returns information and statistics about the server.").with_tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
    spec("config", -2, ADMIN, NONE, "server", "2.0.0", "Depends on subcommand", "Gets and sets configuration: GET, SET, RESETSTAT.").with_subcommands(CONFIG_SUBS),
    spec("dbsize", 1, READONLY | FAST, NONE, "server", "1.0.0", "O(1)", "Returns the number of keys.").with_tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    spec("flushdb", -1, WRITE, NONE, "server", "1.0.0", "O(N) where N is the number of keys in the selected database", "Removes all keys.").with_tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("flushall", -1, WRITE, NONE, "server", "1.0.0", "O(N) where N is the total number of keys in all databases", "Removes all keys.").with_tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    spec("time", 1, FAST, NONE, "server", "2.6.0", "O(1)", "Returns the server time.").with_tips(&["nondeterministic_output"]),
    spec("role", 1, FAST, NONE, "server", "2.8.12", "O(1)", "Returns the replication role."),
    spec("wait", 3, 0, NONE, "generic", "3.0.0", "O(1)", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.").with_tips(&["request_policy:all_shards", "response_policy:agg_min"]),
    spec("memory", -2, READONLY, NONE, "server", "4.0.0", "Depends on subcommand", "Memory introspection: USAGE.").with_subcommands(MEMORY_SUBS),
    spec("cluster", -2, 0, NONE, "cluster", "3.0.0", "Depends on subcommand", "Cluster commands: SLOTS, SHARDS, NODES, INFO, MYID, MYSHARDID, KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, FORGET, LEAVE, REBALANCE.").with_subcommands(CLUSTER_SUBS),
    spec("object", -2, READONLY, NONE, "generic", "2.2.3", "Depends on subcommand", "Inspects a key: ENCODING, FREQ, IDLETIME, REFCOUNT.").with_subcommands(OBJECT_SUBS),
    // strings
    spec("get", 2, READONLY | FAST, FIRST, "string", "1.0.0", "O(1)", "Returns the string value of a key."),
    spec("set", -3, WRITE | DENYOOM, FIRST, "string", "1.0.0", "O(1)", "Sets the string value of a key, with optional expiry and conditions."),
    spec("setnx", 3, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Sets a key only if it does not exist."),
    spec("setex", 4, WRITE | DENYOOM, FIRST, "string", "2.0.0", "O(1)", "Sets a key with an expiry in seconds."),
    spec("psetex", 4, WRITE | DENYOOM, FIRST, "string", "2.6.0", "O(1)", "Sets a key with an expiry in milliseconds."),
    spec("getex", -2, WRITE | FAST, FIRST, "string", "6.2.0", "O(1)", "Returns a string and optionally changes its expiry."),
    spec("getdel", 2, WRITE | FAST, FIRST, "string", "6.2.0", "O(1)", "Returns a string and deletes the key."),
    spec("getset", 3, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Sets a string and returns the previous value."),
    spec("mget", -2, READONLY | FAST, ALL, "string", "1.0.0", "O(N) where N is the number of keys to retrieve", "Returns the values of several keys.").with_tips(&["request_policy:multi_shard"]),
    spec("mset", -3, WRITE | DENYOOM, PAIRS, "string", "1.0.1", "O(N) where N is the number of keys to set", "Sets several keys atomically.").with_tips(&["request_policy:multi_shard", "response_policy:all_succeeded"]),
    spec("msetnx", -3, WRITE | DENYOOM, PAIRS, "string", "1.0.1", "O(N) where N is the number of keys to set", "Sets several keys only if none exists.").with_tips(&["request_policy:multi_shard", "response_policy:agg_min"]),
    spec("append", 3, WRITE | DENYOOM | FAST, FIRST, "string", "2.0.0", "O(1)", "Appends to a string."),
    spec("strlen", 2, READONLY | FAST, FIRST, "string", "2.2.0", "O(1)", "Returns the length of a string."),
    spec("getrange", 4, READONLY, FIRST, "string", "2.4.0", "O(N)", "Returns a substring."),
    spec("substr", 4, READONLY, FIRST, "string", "1.0.0", "O(N)", "Returns a substring (old name of GETRANGE)."),
    spec("setrange", 4, WRITE | DENYOOM, FIRST, "string", "2.2.0", "O(1), not counting the time taken to copy the new string in place", "Overwrites part of a string at an offset."),
    spec("incr", 2, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Increments an integer by one."),
    spec("decr", 2, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Decrements an integer by one."),
    spec("incrby", 3, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Increments an integer by a number."),
    spec("decrby", 3, WRITE | DENYOOM | FAST, FIRST, "string", "1.0.0", "O(1)", "Decrements an integer by a number."),
    spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, FIRST, "string", "2.6.0", "O(1)", "Increments a float by a number."),
    // keys
    spec("del", -2, WRITE, ALL, "generic", "1.0.0", "O(N)", "Deletes keys.").with_tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    spec("unlink", -2, WRITE | FAST, ALL, "generic", "4.0.0", "O(1)", "Deletes keys.").with_tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    spec("exists", -2, READONLY | FAST, ALL, "generic", "1.0.0", "O(N) where N is the number of keys to check", "Counts how many of the keys exist.").with_tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    spec("touch", -2, READONLY | FAST, ALL, "generic", "3.2.1", "O(N) where N is the number of keys that will be touched", "Refreshes keys' last access time.").with_tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    spec("type", 2, READONLY | FAST, FIRST, "generic", "1.0.0", "O(1)", "Returns the type of a key's value."),
    spec("keys", 2, READONLY, NONE, "generic", "1.0.0", "O(N)", "Returns all keys that match a pattern.").with_tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    spec("scan", -2, READONLY, NONE, "generic", "2.8.0", "O(1)", "Iterates over the keys.").with_tips(&["nondeterministic_output", "request_policy:special"]),
    spec("randomkey", 1, READONLY, NONE, "generic", "1.0.0", "O(1)", "Returns a random key.").with_tips(&["request_policy:all_shards", "nondeterministic_output"]),
    spec("rename", 3, WRITE, FIRST_TWO, "generic", "1.0.0", "O(1)", "Renames a key, replacing the destination."),
    spec("renamenx", 3, WRITE | FAST, FIRST_TWO, "generic", "1.0.0", "O(1)", "Renames a key if the new name is free."),
    spec("copy", -3, WRITE | DENYOOM, FIRST_TWO, "generic", "6.2.0", "O(N)", "Copies a key's value to another key."),
    spec("expire", -3, WRITE | FAST, FIRST, "generic", "1.0.0", "O(1)", "Sets a key's time to live in seconds."),
    spec("pexpire", -3, WRITE | FAST, FIRST, "generic", "2.6.0", "O(1)", "Sets a key's time to live in milliseconds."),
    spec("expireat", -3, WRITE | FAST, FIRST, "generic", "1.2.0", "O(1)", "Sets a key's expiry as a Unix time in seconds."),
    spec("pexpireat", -3, WRITE | FAST, FIRST, "generic", "2.6.0", "O(1)", "Sets a key's expiry as a Unix time in milliseconds."),
    spec("ttl", 2, READONLY | FAST, FIRST, "generic", "1.0.0", "O(1)", "Returns a key's time to live in seconds.").with_tips(&["nondeterministic_output"]),
    spec("pttl", 2, READONLY | FAST, FIRST, "generic", "2.6.0", "O(1)", "Returns a key's time to live in milliseconds.").with_tips(&["nondeterministic_output"]),
    spec("expiretime", 2, READONLY | FAST, FIRST, "generic", "7.0.0", "O(1)", "Returns a key's expiry as a Unix time in seconds."),
    spec("pexpiretime", 2, READONLY | FAST, FIRST, "generic", "7.0.0", "O(1)", "Returns a key's expiry as a Unix time in milliseconds."),
    spec("persist", 2, WRITE | FAST, FIRST, "generic", "2.2.0", "O(1)", "Removes a key's expiry."),
    // hashes
    spec("hset", -4, WRITE | DENYOOM | FAST, FIRST, "hash", "2.0.0", "O(1)", "Sets fields of a hash; returns how many are new."),
    spec("hmset", -4, WRITE | DENYOOM | FAST, FIRST, "hash", "2.0.0", "O(N) where N is the number of fields being set", "Sets fields of a hash."),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, FIRST, "hash", "2.0.0", "O(1)", "Sets a field only if it does not exist."),
    spec("hget", 3, READONLY | FAST, FIRST, "hash", "2.0.0", "O(1)", "Returns the value of a field."),
    spec("hmget", -3, READONLY | FAST, FIRST, "hash", "2.0.0", "O(N) where N is the number of fields being requested", "Returns the values of several fields."),
    spec("hdel", -3, WRITE | FAST, FIRST, "hash", "2.0.0", "O(N) where N is the number of fields to be removed", "Deletes fields."),
    spec("hgetall", 2, READONLY, FIRST, "hash", "2.0.0", "O(N) where N is the size of the hash", "Returns all fields and values.").with_tips(&["nondeterministic_output_order"]),
    spec("hkeys", 2, READONLY, FIRST, "hash", "2.0.0", "O(N) where N is the size of the hash", "Returns all fields.").with_tips(&["nondeterministic_output_order"]),
    spec("hvals", 2, READONLY, FIRST, "hash", "2.0.0", "O(N) where N is the size of the hash", "Returns all values.").with_tips(&["nondeterministic_output_order"]),
    spec("hlen", 2, READONLY | FAST, FIRST, "hash", "2.0.0", "O(1)", "Returns the number of fields."),
    spec("hexists", 3, READONLY | FAST, FIRST, "hash", "2.0.0", "O(1)", "Tells whether a field exists."),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, FIRST, "hash", "2.0.0", "O(1)", "Increments an integer field."),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, FIRST, "hash", "2.6.0", "O(1)", "Increments a float field."),
    spec("hstrlen", 3, READONLY | FAST, FIRST, "hash", "3.2.0", "O(1)", "Returns the length of a field's value."),
    spec("hrandfield", -2, READONLY, FIRST, "hash", "6.2.0", "O(N) where N is the number of fields returned", "Returns random fields.").with_tips(&["nondeterministic_output"]),
    spec("hscan", -3, READONLY, FIRST, "hash", "2.8.0", "O(1)", "Iterates over the fields of a hash.").with_tips(&["nondeterministic_output"]),
    // lists
    spec("lpush", -3, WRITE | DENYOOM | FAST, FIRST, "list", "1.0.0", "O(1) for each element added", "Prepends elements to a list; creates it if needed."),
    spec("rpush", -3, WRITE | DENYOOM | FAST, FIRST, "list", "1.0.0", "O(1) for each element added", "Appends elements to a list; creates it if needed."),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, FIRST, "list", "2.2.0", "O(1) for each element added", "Prepends elements to a list that exists."),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, FIRST, "list", "2.2.0", "O(1) for each element added", "Appends elements to a list that exists."),
    spec("lpop", -2, WRITE | FAST, FIRST, "list", "1.0.0", "O(N) where N is the number of elements returned", "Removes and returns the first elements of a list."),
    spec("rpop", -2, WRITE | FAST, FIRST, "list", "1.0.0", "O(N) where N is the number of elements returned", "Removes and returns the last elements of a list."),
    spec("lrange", 4, READONLY, FIRST, "list", "1.0.0", "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.", "Returns a range of elements."),
    spec("lindex", 3, READONLY, FIRST, "list", "1.0.0", "O(N) where N is the number of elements to traverse to get to the element at index", "Returns the element at an index."),
    spec("lset", 4, WRITE | DENYOOM, FIRST, "list", "1.0.0", "O(N) where N is the length of the list", "Sets the element at an index."),
    spec("linsert", 5, WRITE | DENYOOM, FIRST, "list", "2.2.0", "O(N) where N is the number of elements to traverse before seeing the value pivot", "Inserts an element before or after another."),
    spec("llen", 2, READONLY | FAST, FIRST, "list", "1.0.0", "O(1)", "Returns the length of a list."),
    spec("lrem", 4, WRITE, FIRST, "list", "1.0.0", "O(N+M) where N is the length of the list and M is the number of elements removed", "Removes occurrences of an element."),
    spec("ltrim", 4, WRITE, FIRST, "list", "1.0.0", "O(N) where N is the number of elements to be removed by the operation", "Keeps only a range of elements."),
    spec("lpos", -3, READONLY, FIRST, "list", "6.0.6", "O(N) where N is the number of elements in the list", "Returns the indexes of matching elements."),
    spec("lmove", 5, WRITE | DENYOOM, FIRST_TWO, "list", "6.2.0", "O(1)", "Pops an element from one list and pushes it to another."),
    spec("rpoplpush", 3, WRITE | DENYOOM, FIRST_TWO, "list", "1.2.0", "O(1)", "Pops the last element of a list and pushes it to the head of another."),
    spec("lmpop", -4, WRITE, &[KeySpec::Counted { at: 1, step: 1 }], "list", "7.0.0", "O(N+M) where N is the number of provided keys and M is the number of elements returned", "Pops elements from the first non-empty of several lists."),
    spec("blpop", -3, WRITE, &[KeySpec::Range { first: 1, last: -2, step: 1 }], "list", "2.0.0", "O(N) where N is the number of provided keys", "Pops the first element of the first non-empty list, or waits for one."),
    spec("brpop", -3, WRITE, &[KeySpec::Range { first: 1, last: -2, step: 1 }], "list", "2.0.0", "O(N) where N is the number of provided keys", "Pops the last element of the first non-empty list, or waits for one."),
    spec("blmove", 6, WRITE | DENYOOM, FIRST_TWO, "list", "6.2.0", "O(1)", "Moves an element between lists, or waits for one."),
    spec("brpoplpush", 4, WRITE | DENYOOM, FIRST_TWO, "list", "2.2.0", "O(1)", "Moves the last element of a list to the head of another, or waits for one."),
    spec("blmpop", -5, WRITE, &[KeySpec::Counted { at: 2, step: 1 }], "list", "7.0.0", "O(N+M) where N is the number of provided keys and M is the number of elements returned", "Pops elements from the first non-empty of several lists, or waits for one."),
    // sets
    spec("sadd", -3, WRITE | DENYOOM | FAST, FIRST, "set", "1.0.0", "O(1) for each element added", "Adds members to a set; returns how many are new."),
    spec("srem", -3, WRITE | FAST, FIRST, "set", "1.0.0", "O(N) where N is the number of members to be removed", "Removes members from a set."),
    spec("smembers", 2, READONLY, FIRST, "set", "1.0.0", "O(N) where N is the set cardinality", "Returns every member of a set.").with_tips(&["nondeterministic_output_order"]),
    spec("sismember", 3, READONLY | FAST, FIRST, "set", "1.0.0", "O(1)", "Tells whether a member is in a set."),
    spec("smismember", -3, READONLY | FAST, FIRST, "set", "6.2.0", "O(N) where N is the number of elements being checked for membership", "Tells whether each of several members is in a set."),
    spec("scard", 2, READONLY | FAST, FIRST, "set", "1.0.0", "O(1)", "Returns the number of members of a set."),
    spec("spop", -2, WRITE | FAST, FIRST, "set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the value of the passed count", "Removes and returns random members.").with_tips(&["nondeterministic_output"]),
    spec("srandmember", -2, READONLY, FIRST, "set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count", "Returns random members; a negative count may repeat them.").with_tips(&["nondeterministic_output"]),
    spec("smove", 4, WRITE | FAST, FIRST_TWO, "set", "1.0.0", "O(1)", "Moves a member from one set to another."),
    spec("sinter", -2, READONLY, ALL, "set", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets", "Returns the intersection of sets.").with_tips(&["nondeterministic_output_order"]),
    spec("sintercard", -3, READONLY, &[KeySpec::Counted { at: 1, step: 1 }], "set", "7.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets", "Returns the size of the intersection of sets, up to a limit."),
    spec("sinterstore", -3, WRITE | DENYOOM, ALL, "set", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets", "Stores the intersection of sets in a key."),
    spec("sunion", -2, READONLY, ALL, "set", "1.0.0", "O(N) where N is the total number of elements in all given sets", "Returns the union of sets.").with_tips(&["nondeterministic_output_order"]),
    spec("sunionstore", -3, WRITE | DENYOOM, ALL, "set", "1.0.0", "O(N) where N is the total number of elements in all given sets", "Stores the union of sets in a key."),
    spec("sdiff", -2, READONLY, ALL, "set", "1.0.0", "O(N) where N is the total number of elements in all given sets", "Returns the members of the first set that no other set has.").with_tips(&["nondeterministic_output_order"]),
    spec("sdiffstore", -3, WRITE | DENYOOM, ALL, "set", "1.0.0", "O(N) where N is the total number of elements in all given sets", "Stores the difference of sets in a key."),
    spec("sscan", -3, READONLY, FIRST, "set", "2.8.0", "O(1) for every call. O(N) for a complete iteration", "Iterates over the members of a set.").with_tips(&["nondeterministic_output"]),
    // sorted sets
    spec("zadd", -4, WRITE | DENYOOM | FAST, FIRST, "sorted_set", "1.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set", "Adds members with scores, or updates their scores (NX, XX, GT, LT, CH, INCR)."),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, FIRST, "sorted_set", "1.2.0", "O(log(N)) where N is the number of elements in the sorted set", "Increments a member's score."),
    spec("zrem", -3, WRITE | FAST, FIRST, "sorted_set", "1.2.0", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed", "Removes members."),
    spec("zcard", 2, READONLY | FAST, FIRST, "sorted_set", "1.2.0", "O(1)", "Returns the number of members."),
    spec("zscore", 3, READONLY | FAST, FIRST, "sorted_set", "1.2.0", "O(1)", "Returns a member's score."),
    spec("zmscore", -3, READONLY | FAST, FIRST, "sorted_set", "6.2.0", "O(N) where N is the number of members being requested", "Returns the scores of several members."),
    spec("zrank", -3, READONLY | FAST, FIRST, "sorted_set", "2.0.0", "O(log(N))", "Returns a member's rank, lowest score first (WITHSCORE: and its score)."),
    spec("zrevrank", -3, READONLY | FAST, FIRST, "sorted_set", "2.0.0", "O(log(N))", "Returns a member's rank, highest score first (WITHSCORE: and its score)."),
    spec("zcount", 4, READONLY | FAST, FIRST, "sorted_set", "2.0.0", "O(log(N)) with N being the number of elements in the sorted set", "Counts the members with scores within a range."),
    spec("zlexcount", 4, READONLY | FAST, FIRST, "sorted_set", "2.8.9", "O(log(N)) with N being the number of elements in the sorted set", "Counts the members within a lexicographical range."),
    spec("zrange", -4, READONLY, FIRST, "sorted_set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned", "Returns members by rank, score (BYSCORE) or member (BYLEX), either way (REV)."),
    spec("zrangestore", -5, WRITE | DENYOOM, FIRST_TWO, "sorted_set", "6.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key", "Stores a range of a sorted set in another key."),
    spec("zrangebyscore", -4, READONLY, FIRST, "sorted_set", "1.0.5", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned", "Returns members within a range of scores."),
    spec("zrevrangebyscore", -4, READONLY, FIRST, "sorted_set", "2.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned", "Returns members within a range of scores, highest first."),
    spec("zrangebylex", -4, READONLY, FIRST, "sorted_set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned", "Returns members within a lexicographical range."),
    spec("zrevrangebylex", -4, READONLY, FIRST, "sorted_set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned", "Returns members within a lexicographical range, highest first."),
    spec("zrevrange", -4, READONLY, FIRST, "sorted_set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned", "Returns members by rank, highest score first."),
    spec("zremrangebyrank", 4, WRITE, FIRST, "sorted_set", "2.0.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation", "Removes the members within a range of ranks."),
    spec("zremrangebyscore", 4, WRITE, FIRST, "sorted_set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation", "Removes the members within a range of scores."),
    spec("zremrangebylex", 4, WRITE, FIRST, "sorted_set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation", "Removes the members within a lexicographical range."),
    spec("zpopmin", -2, WRITE | FAST, FIRST, "sorted_set", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped", "Removes and returns the members with the lowest scores."),
    spec("zpopmax", -2, WRITE | FAST, FIRST, "sorted_set", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped", "Removes and returns the members with the highest scores."),
    spec("zmpop", -4, WRITE, COUNTED_FIRST, "sorted_set", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped", "Pops members from the first non-empty sorted set of several."),
    spec("bzpopmin", -3, WRITE, &[KeySpec::Range { first: 1, last: -2, step: 1 }], "sorted_set", "5.0.0", "O(log(N)) with N being the number of elements in the sorted set.", "Removes and returns the member with the lowest score from one of several sorted sets, or waits for one."),
    spec("bzpopmax", -3, WRITE, &[KeySpec::Range { first: 1, last: -2, step: 1 }], "sorted_set", "5.0.0", "O(log(N)) with N being the number of elements in the sorted set.", "Removes and returns the member with the highest score from one of several sorted sets, or waits for one."),
    spec("bzmpop", -5, WRITE, &[KeySpec::Counted { at: 2, step: 1 }], "sorted_set", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped", "Pops members from the first non-empty of several sorted sets, or waits for one."),
    spec("zrandmember", -2, READONLY, FIRST, "sorted_set", "6.2.0", "O(N) where N is the number of members returned", "Returns random members.").with_tips(&["nondeterministic_output"]),
    spec("zunion", -3, READONLY, COUNTED_FIRST, "sorted_set", "6.2.0", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set", "Returns the union of sorted sets (WEIGHTS, AGGREGATE)."),
    spec("zinter", -3, READONLY, COUNTED_FIRST, "sorted_set", "6.2.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set", "Returns the intersection of sorted sets (WEIGHTS, AGGREGATE)."),
    spec("zdiff", -3, READONLY, COUNTED_FIRST, "sorted_set", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set", "Returns the members of the first sorted set that the others lack."),
    spec("zintercard", -3, READONLY, COUNTED_FIRST, "sorted_set", "7.0.0", "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets", "Counts the members of the intersection of sorted sets (LIMIT)."),
    spec("zunionstore", -4, WRITE | DENYOOM, DEST_COUNTED, "sorted_set", "2.0.0", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set", "Stores the union of sorted sets in a key."),
    spec("zinterstore", -4, WRITE | DENYOOM, DEST_COUNTED, "sorted_set", "2.0.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set", "Stores the intersection of sorted sets in a key."),
    spec("zdiffstore", -4, WRITE | DENYOOM, DEST_COUNTED, "sorted_set", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set", "Stores the difference of sorted sets in a key."),
    spec("zscan", -3, READONLY, FIRST, "sorted_set", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection", "Iterates over the members and scores of a sorted set.").with_tips(&["nondeterministic_output"]),
    // bitmaps and string ranges
    spec("setbit", 4, WRITE | DENYOOM, FIRST, "bitmap", "2.2.0", "O(1)", "Sets or clears a bit of a string; returns the bit's old value."),
    spec("getbit", 3, READONLY | FAST, FIRST, "bitmap", "2.2.0", "O(1)", "Returns a bit of a string."),
    spec("bitcount", -2, READONLY, FIRST, "bitmap", "2.6.0", "O(N)", "Counts the set bits of a string, or of a range of bytes or bits."),
    spec("bitpos", -3, READONLY, FIRST, "bitmap", "2.8.7", "O(N)", "Finds the first set or clear bit of a string, or of a range."),
    spec("bitop", -4, WRITE | DENYOOM, &[KeySpec::Range { first: 2, last: -1, step: 1 }], "bitmap", "2.6.0", "O(N)", "Stores the AND, OR, XOR or NOT of strings in a key."),
    spec("bitfield", -2, WRITE | DENYOOM, FIRST, "bitmap", "3.2.0", "O(1) for each subcommand specified", "Reads, writes and increments integers of any width at any bit offset."),
    spec("bitfield_ro", -2, READONLY | FAST, FIRST, "bitmap", "6.0.0", "O(1) for each subcommand specified", "Reads integers of any width at any bit offset."),
    spec("lcs", -3, READONLY, FIRST_TWO, "string", "7.0.0", "O(N*M) where N and M are the lengths of s1 and s2, respectively", "Returns the longest common subsequence of two strings, its length or its matches."),
    // hyperloglog
    spec("pfadd", -2, WRITE | DENYOOM | FAST, FIRST, "hyperloglog", "2.8.9", "O(1) to add every element.", "Adds elements to a HyperLogLog key; creates the key if absent."),
    spec("pfcount", -2, READONLY, ALL, "hyperloglog", "2.8.9", "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    spec("pfmerge", -2, WRITE | DENYOOM, ALL, "hyperloglog", "2.8.9", "O(N) to merge N HyperLogLogs, but with high constant times.", "Merges one or more HyperLogLog values into a single key."),
    // geo
    spec("geoadd", -5, WRITE | DENYOOM, FIRST, "geo", "3.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set.", "Adds one or more members to a geospatial index. The key is created if it doesn't exist."),
    spec("geodist", -4, READONLY, FIRST, "geo", "3.2.0", "O(1)", "Returns the distance between two members of a geospatial index."),
    spec("geohash", -2, READONLY, FIRST, "geo", "3.2.0", "O(1) for each member requested.", "Returns members from a geospatial index as geohash strings."),
    spec("geopos", -2, READONLY, FIRST, "geo", "3.2.0", "O(1) for each member requested.", "Returns the longitude and latitude of members from a geospatial index."),
    spec("geosearch", -7, READONLY, FIRST, "geo", "6.2.0", "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape", "Queries a geospatial index for members inside an area of a box or a circle."),
    spec("geosearchstore", -8, WRITE | DENYOOM, FIRST_TWO, "geo", "6.2.0", "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result."),
    spec("georadius_ro", -6, READONLY, FIRST, "geo", "3.2.10", "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.", "Returns members from a geospatial index that are within a distance from a coordinate."),
    spec("georadiusbymember_ro", -5, READONLY, FIRST, "geo", "3.2.10", "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.", "Returns members from a geospatial index that are within a distance from a member."),
    // pub/sub
    spec("subscribe", -2, PUBSUB, NONE, "pubsub", "2.0.0", "O(N) where N is the number of channels to subscribe to.", "Listens for messages published to channels."),
    spec("unsubscribe", -1, PUBSUB, NONE, "pubsub", "2.0.0", "O(N) where N is the number of channels to unsubscribe.", "Stops listening to messages posted to channels (all of them without arguments)."),
    spec("psubscribe", -2, PUBSUB, NONE, "pubsub", "2.0.0", "O(N) where N is the number of patterns to subscribe to.", "Listens for messages published to channels that match patterns."),
    spec("punsubscribe", -1, PUBSUB, NONE, "pubsub", "2.0.0", "O(N) where N is the number of patterns to unsubscribe.", "Stops listening to messages published to channels that match patterns (all of them without arguments)."),
    spec("publish", 3, PUBSUB | FAST, NONE, "pubsub", "2.0.0", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).", "Posts a message to a channel, on every node of the cluster; returns the receivers on this node."),
    spec("pubsub", -2, 0, NONE, "pubsub", "2.8.0", "Depends on subcommand", "Pub/sub introspection: CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB.").with_subcommands(PUBSUB_SUBS),
    spec("ssubscribe", -2, PUBSUB, ALL, "pubsub", "7.0.0", "O(N) where N is the number of shard channels to subscribe to.", "Listens for messages published to shard channels (on a node that holds their slot)."),
    spec("sunsubscribe", -1, PUBSUB, ALL, "pubsub", "7.0.0", "O(N) where N is the number of shard channels to unsubscribe.", "Stops listening to messages posted to shard channels (all of them without arguments)."),
    spec("spublish", 3, PUBSUB | FAST, FIRST, "pubsub", "7.0.0", "O(N) where N is the number of clients subscribed to the receiving shard channel.", "Posts a message to a shard channel, on the copies of its slot."),
    // scripting
    spec("eval", -3, 0, SCRIPT_KEYS, "scripting", "2.6.0", "Depends on the script that is executed.", "Executes a server-side Lua script."),
    spec("evalsha", -3, 0, SCRIPT_KEYS, "scripting", "2.6.0", "Depends on the script that is executed.", "Executes a server-side Lua script by SHA1 digest."),
    spec("eval_ro", -3, READONLY, SCRIPT_KEYS, "scripting", "7.0.0", "Depends on the script that is executed.", "Executes a read-only server-side Lua script."),
    spec("evalsha_ro", -3, READONLY, SCRIPT_KEYS, "scripting", "7.0.0", "Depends on the script that is executed.", "Executes a read-only server-side Lua script by SHA1 digest."),
    spec("script", -2, 0, NONE, "scripting", "2.6.0", "Depends on subcommand", "Lua scripts: LOAD, EXISTS, FLUSH, KILL.").with_subcommands(SCRIPT_SUBS),
    // rate limiting
    spec("cl.throttle", -5, WRITE | DENYOOM | FAST, FIRST, "module", "1.0.0", "O(1)", "Rate-limits a key by GCRA: [limited, limit, remaining, retry after s, reset after s] (redis-cell's CL.THROTTLE)."),
];

/// The index of each command's name in [`COMMANDS`].
static INDEX: LazyLock<hashbrown::HashMap<&'static [u8], usize>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_bytes(), i))
        .collect()
});

/// The longest command name (`georadiusbymember_ro`), so that [`lookup`] lowers case on the
/// stack.
const MAX_NAME: usize = 20;

/// Finds a command by name, in any case, with its index in [`COMMANDS`].
#[must_use]
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    let mut buf = [0u8; MAX_NAME];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    INDEX.get(&*lower).map(|&i| (i, &COMMANDS[i]))
}

/// A request's arguments, the command name first: the server's borrowed [`Args`] or a client's
/// slice of byte strings.
pub trait Arguments {
    /// How many arguments, the name included.
    fn count(&self) -> usize;
    /// Argument `i < count()`.
    fn arg(&self, i: usize) -> &[u8];
}

impl Arguments for Args<'_> {
    fn count(&self) -> usize {
        self.len()
    }

    fn arg(&self, i: usize) -> &[u8] {
        self.get(i)
    }
}

impl<A: AsRef<[u8]>> Arguments for [A] {
    fn count(&self) -> usize {
        self.len()
    }

    fn arg(&self, i: usize) -> &[u8] {
        self[i].as_ref()
    }
}

/// The positions of the key arguments of a request for `spec` (the command name is position
/// 0), in order. For a container, the keys are its subcommand's (argument 1 names it); an
/// unknown subcommand has none. Positions past the end of a short request are left out, and a
/// count that is not a non-negative integer (`EVAL s x`) counts no keys: callers check arity
/// first, the command itself rejects the rest.
pub fn keys<'a, A: Arguments + ?Sized>(spec: &CommandSpec, args: &'a A) -> KeyPositions<'a, A> {
    let specs = if spec.subcommands.is_empty() || args.count() < 2 {
        spec.keys
    } else {
        spec.subcommand(args.arg(1)).map_or(&[][..], |s| s.keys)
    };
    KeyPositions {
        args,
        specs,
        next: 0,
        end: 0,
        step: 1,
    }
}

/// The iterator of [`keys`]. Allocates nothing.
#[derive(Debug)]
pub struct KeyPositions<'a, A: ?Sized> {
    args: &'a A,
    specs: &'static [KeySpec],
    next: usize,
    end: usize,
    step: usize,
}

impl<A: Arguments + ?Sized> Iterator for KeyPositions<'_, A> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            if self.next < self.end {
                let at = self.next;
                self.next += self.step;
                return Some(at);
            }
            let (spec, rest) = self.specs.split_first()?;
            self.specs = rest;
            let argc = self.args.count();
            match *spec {
                KeySpec::Range { first, last, step } => {
                    let last = if last < 0 {
                        argc as isize + last
                    } else {
                        last.min(argc as isize - 1)
                    };
                    self.next = first;
                    self.end = usize::try_from(last + 1).unwrap_or(0);
                    self.step = step.max(1);
                }
                KeySpec::Counted { at, step } => {
                    let count = if at < argc {
                        crate::request::parse_i64(self.args.arg(at))
                            .and_then(|n| usize::try_from(n).ok())
                            .unwrap_or(0)
                    } else {
                        0
                    };
                    let step = step.max(1);
                    self.next = at + 1;
                    self.end = count.saturating_mul(step).saturating_add(at + 1).min(argc);
                    self.step = step;
                }
            }
        }
    }
}
