//! ACL users: who may run which commands on which keys, as Redis 7's ACL does it.
//!
//! A user has a switch (`on`/`off`), passwords (kept as SHA-256, shown as hex like Redis), key
//! patterns, and one permission bit per *ACL unit*: a command, or one subcommand of a container
//! command (`client|kill`, `config|get`). Categories (`@read`, `@admin`, …) are derived from the
//! command table, never kept beside it: flags give `@write`, `@read`, `@admin` + `@dangerous`,
//! `@fast` or `@slow`, `@connection`; the group gives `@keyspace`, `@string` or `@hash`; and a
//! short list adds what Redis's command docs say beyond that (`FLUSHALL` and `KEYS` are
//! `@dangerous`, `CLIENT KILL` is `@admin`). `COMMAND INFO` shows the same categories.
//!
//! The `default` user is the `requirepass` one: its password *is* `requirepass`, so `AUTH pw`,
//! `CONFIG SET requirepass` and `ACL SETUSER default >pw` agree. Dispatch asks [`Acl::check`]
//! once per command, after authentication; while `default` is the only user and may do everything
//! (the usual case) that costs one atomic load.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use dcache_protocol::Args;
use parking_lot::RwLock;

use crate::command::{self, ADMIN, CONNECTION, Command, FAST, NO_AUTH, READONLY, WRITE};
use crate::security::constant_time_eq;

/// Redis's categories, in Redis's order (`ACL CAT` lists them so).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Categories that Redis's command docs give beyond what flags and group imply.
const EXTRA: &[(&str, &[&str])] = &[
    ("acl|deluser", &["admin", "dangerous"]),
    ("acl|getuser", &["admin", "dangerous"]),
    ("acl|list", &["admin", "dangerous"]),
    ("acl|setuser", &["admin", "dangerous"]),
    ("acl|users", &["admin", "dangerous"]),
    ("client|kill", &["admin", "dangerous"]),
    ("client|list", &["admin", "dangerous"]),
    ("dbsize", &["keyspace"]),
    ("flushall", &["keyspace", "dangerous"]),
    ("flushdb", &["keyspace", "dangerous"]),
    ("info", &["dangerous"]),
    ("keys", &["dangerous"]),
];

fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES.iter().position(|c| *c == name).map(|i| 1 << i)
}

/// The categories of a command's table row, from its flags and group.
fn implied(cmd: &Command) -> u32 {
    let bit = |name| category_bit(name).expect("a known category");
    let mut cats = 0;
    for (flag, name) in [
        (WRITE, "write"),
        (READONLY, "read"),
        (CONNECTION, "connection"),
    ] {
        if cmd.flags & flag != 0 {
            cats |= bit(name);
        }
    }
    if cmd.flags & ADMIN != 0 {
        cats |= bit("admin") | bit("dangerous");
    }
    cats |= bit(if cmd.flags & FAST != 0 {
        "fast"
    } else {
        "slow"
    });
    cats |= match cmd.group {
        "generic" => bit("keyspace"),
        "string" => bit("string"),
        "hash" => bit("hash"),
        "transactions" => bit("transaction"),
        "pubsub" => bit("pubsub"),
        "scripting" => bit("scripting"),
        _ => 0,
    };
    cats
}

fn extra(fullname: &str) -> u32 {
    EXTRA
        .iter()
        .filter(|(name, _)| *name == fullname)
        .flat_map(|(_, cats)| cats.iter())
        .map(|c| category_bit(c).expect("a known category"))
        .fold(0, |a, b| a | b)
}

/// The categories of a command (a container's own, without its subcommands'), by name.
#[must_use]
pub fn command_categories(cmd: &Command) -> Vec<&'static str> {
    unit_categories(cmd, None)
}

/// The categories of a command, or of its subcommand `fullname` (`client|kill`), by name.
#[must_use]
pub fn unit_categories(cmd: &Command, fullname: Option<&str>) -> Vec<&'static str> {
    let cats = implied(cmd) | extra(cmd.name) | fullname.map_or(0, extra);
    CATEGORIES
        .iter()
        .enumerate()
        .filter(|(i, _)| cats & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// One thing a permission bit allows: a command, or one subcommand of a container.
#[derive(Debug)]
struct Unit {
    /// `get`, or `client|kill`.
    fullname: String,
    categories: u32,
}

/// Every unit, and for each command the range of its units.
struct Units {
    units: Vec<Unit>,
    by_command: Vec<std::ops::Range<usize>>,
}

static UNITS: LazyLock<Units> = LazyLock::new(|| {
    let mut units = Vec::new();
    let mut by_command = Vec::new();
    for cmd in command::table() {
        let start = units.len();
        // A container's units are its subcommands, all of them (the spec table lists every one
        // its handler serves): one missing would be runnable only by a user allowed them all.
        if cmd.subcommands.is_empty() {
            units.push(Unit {
                fullname: cmd.name.to_owned(),
                categories: implied(cmd) | extra(cmd.name),
            });
        }
        for sub in cmd.subcommands {
            let fullname = format!("{}|{}", cmd.name, sub.name);
            units.push(Unit {
                categories: implied(cmd) | extra(cmd.name) | extra(&fullname),
                fullname,
            });
        }
        by_command.push(start..units.len());
    }
    Units { units, by_command }
});

/// The unit a request runs: `Some` for a command or a known subcommand, `None` for a container
/// called bare or with a subcommand it does not have.
fn unit_of(command: usize, args: Args<'_>) -> Option<usize> {
    let range = UNITS.by_command[command].clone();
    if range.len() == 1 && !UNITS.units[range.start].fullname.contains('|') {
        return Some(range.start);
    }
    let sub = args.iter().nth(1)?;
    range.into_iter().find(|&u| {
        let name = &UNITS.units[u].fullname;
        name.split_once('|')
            .map_or(name.as_str(), |(_, sub)| sub)
            .as_bytes()
            .eq_ignore_ascii_case(sub)
    })
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16).expect("checked above") as u8;
        out[i] = digit(pair[0]) * 16 + digit(pair[1]);
    }
    Some(out)
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    passwords: Vec<[u8; 32]>,
    all_keys: bool,
    patterns: Vec<Vec<u8>>,
    /// `allchannels` (`&*`): every pub/sub channel; else only those matching `channels`.
    all_channels: bool,
    channels: Vec<Vec<u8>>,
    /// One bit per unit.
    allowed: Vec<bool>,
    /// The command rules given since the last `+@all`/`-@all`, for `ACL LIST` (Redis 7 shows
    /// them as given, after `-@all`).
    rules: Vec<String>,
    all_commands_base: bool,
}

impl User {
    /// A new user as `ACL SETUSER name` makes it: off, no password, no keys, no channels (Redis
    /// 7's `acl-pubsub-default`, `resetchannels`), no commands.
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            all_keys: false,
            patterns: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            allowed: vec![false; UNITS.units.len()],
            rules: Vec::new(),
            all_commands_base: false,
        }
    }

    /// The `default` user: on, every key, every channel, every command; its password is
    /// `requirepass`.
    fn default_user() -> Self {
        let mut user = Self::new("default");
        user.enabled = true;
        user.nopass = true;
        user.all_keys = true;
        user.all_channels = true;
        user.set_all(true);
        user
    }

    fn set_all(&mut self, on: bool) {
        self.allowed.iter_mut().for_each(|a| *a = on);
        self.rules.clear();
        self.all_commands_base = on;
    }

    fn may_do_everything(&self) -> bool {
        self.enabled && self.all_keys && self.all_channels && self.allowed.iter().all(|&a| a)
    }

    /// Whether the user may use channel `name`, or subscribe to the pattern `name` (a pattern
    /// must be one of the user's own, letter for letter, as in Redis: a narrower pattern could
    /// still be matched by a wider one the user may not have).
    #[must_use]
    pub fn may_use_channel(&self, name: &[u8], is_pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|allowed| {
                if is_pattern {
                    allowed == name
                } else {
                    dcache_store::glob_match(allowed, name)
                }
            })
    }

    /// Applies one `ACL SETUSER` rule.
    fn apply(&mut self, op: &[u8]) -> Result<(), &'static str> {
        let lower = op.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"allkeys" | b"~*" => {
                self.all_keys = true;
                self.patterns.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.patterns.clear();
            }
            b"allchannels" | b"&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => self.set_all(true),
            b"nocommands" | b"-@all" => self.set_all(false),
            b"reset" => {
                for op in [
                    &b"resetpass"[..],
                    b"resetkeys",
                    b"resetchannels",
                    b"off",
                    b"-@all",
                ] {
                    self.apply(op)?;
                }
            }
            _ => match op.first() {
                Some(b'>') => {
                    let hash = sha256(&op[1..]);
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                Some(b'<') => {
                    let hash = sha256(&op[1..]);
                    let before = self.passwords.len();
                    self.passwords.retain(|p| *p != hash);
                    if self.passwords.len() == before {
                        return Err(
                            "The password you are trying to remove from the user does not exist",
                        );
                    }
                }
                Some(b'#') => {
                    let hash = unhex(&op[1..]).ok_or(
                        "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
                    )?;
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                Some(b'~') => {
                    if self.all_keys {
                        return Err(
                            "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
                        );
                    }
                    self.patterns.push(op[1..].to_vec());
                }
                Some(b'&') => {
                    if self.all_channels {
                        return Err(
                            "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
                        );
                    }
                    if !self.channels.iter().any(|c| *c == op[1..]) {
                        self.channels.push(op[1..].to_vec());
                    }
                }
                Some(&sign @ (b'+' | b'-')) => {
                    self.apply_command_rule(sign == b'+', &lower[1..])?
                }
                _ => return Err("Syntax error"),
            },
        }
        Ok(())
    }

    /// `+name`, `-name`, `+name|sub`, `+@category`, `-@category`.
    fn apply_command_rule(&mut self, allow: bool, name: &[u8]) -> Result<(), &'static str> {
        const UNKNOWN: &str = "Unknown command or category name in ACL";
        let name = std::str::from_utf8(name).map_err(|_| UNKNOWN)?;
        let units: Vec<usize> = if let Some(category) = name.strip_prefix('@') {
            let bit = category_bit(category).ok_or(UNKNOWN)?;
            (0..UNITS.units.len())
                .filter(|&u| UNITS.units[u].categories & bit != 0)
                .collect()
        } else if name.contains('|') {
            vec![
                UNITS
                    .units
                    .iter()
                    .position(|u| u.fullname == name)
                    .ok_or(UNKNOWN)?,
            ]
        } else {
            let (index, _) = command::lookup(name.as_bytes()).ok_or(UNKNOWN)?;
            UNITS.by_command[index].clone().collect()
        };
        for u in units {
            self.allowed[u] = allow;
        }
        self.rules
            .push(format!("{}{name}", if allow { '+' } else { '-' }));
        Ok(())
    }

    /// The command rules as `ACL LIST` and `ACL GETUSER` show them.
    #[must_use]
    pub fn commands_description(&self) -> String {
        let base = if self.all_commands_base {
            "+@all"
        } else {
            "-@all"
        };
        std::iter::once(base.to_owned())
            .chain(self.rules.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The key patterns as Redis shows them: `~*`, `~app:* ~tmp:*`, or nothing.
    #[must_use]
    pub fn keys_description(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        self.patterns
            .iter()
            .map(|p| format!("~{}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The channel patterns as `ACL GETUSER` shows them: `&*`, `&news:* &chat`, or nothing.
    #[must_use]
    pub fn channels_description(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|p| format!("&{}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `on`/`off`, then `nopass` when set.
    #[must_use]
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        flags
    }

    /// The passwords' SHA-256, in hex.
    #[must_use]
    pub fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(|p| hex(p)).collect()
    }

    /// The user as one `ACL LIST` line.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("user {}", self.name)];
        parts.extend(self.flags().iter().map(|f| (*f).to_owned()));
        parts.extend(self.password_hashes().iter().map(|h| format!("#{h}")));
        let keys = self.keys_description();
        if !keys.is_empty() {
            parts.push(keys);
        }
        // `ACL LIST` starts a list of patterns with `resetchannels`, as Redis does.
        if !self.all_channels {
            parts.push("resetchannels".to_owned());
        }
        let channels = self.channels_description();
        if !channels.is_empty() {
            parts.push(channels);
        }
        parts.push(self.commands_description());
        parts.join(" ")
    }
}

/// Whether `user` may use the channels a request names: the channels of `SUBSCRIBE`,
/// `SSUBSCRIBE`, `PUBLISH` and `SPUBLISH`, the patterns of `PSUBSCRIBE` (Redis checks no others:
/// unsubscribing and `PUBSUB` introspection are open).
fn channels_allowed(user: &User, name: &str, args: Args<'_>) -> bool {
    let (count, is_pattern) = match name {
        "subscribe" | "ssubscribe" => (usize::MAX, false),
        "psubscribe" => (usize::MAX, true),
        "publish" | "spublish" => (1, false),
        _ => return true,
    };
    args.iter()
        .skip(1)
        .take(count)
        .all(|n| user.may_use_channel(n, is_pattern))
}

/// Why `ACL SETUSER` refused a rule: the rule and Redis's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule: String,
    pub reason: &'static str,
}

/// The node's users.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<String, User>>,
    /// True while `default` is the only user and may run everything on every key: then no
    /// command needs checking.
    open: AtomicBool,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert("default".to_owned(), User::default_user());
        Self {
            users: RwLock::new(users),
            open: AtomicBool::new(true),
        }
    }
}

impl Acl {
    fn refresh_open(&self, users: &BTreeMap<String, User>) {
        let open = users.len() == 1 && users.get("default").is_some_and(User::may_do_everything);
        self.open.store(open, Relaxed);
    }

    /// May `user` run this request (`command` is its index in the command table)?
    ///
    /// # Errors
    /// Redis's `NOPERM` texts: for the command, or for a key outside the user's patterns.
    pub fn check(&self, user: &str, command: usize, args: Args<'_>) -> Result<(), String> {
        if self.open.load(Relaxed) {
            return Ok(());
        }
        let users = self.users.read();
        let Some(user) = users.get(user) else {
            // Deleted while connected: its connections are being closed.
            return Err(format!(
                "NOPERM User {user} has no permissions to run the '{}' command",
                command::table()[command].name
            ));
        };
        let cmd = &command::table()[command];
        let unit = unit_of(command, args);
        if cmd.flags & NO_AUTH == 0 {
            let allowed = match unit {
                Some(u) => user.allowed[u],
                None => UNITS.by_command[command].clone().all(|u| user.allowed[u]),
            };
            if !allowed {
                let name = unit.map_or(cmd.name, |u| UNITS.units[u].fullname.as_str());
                return Err(format!(
                    "NOPERM User {} has no permissions to run the '{name}' command",
                    user.name
                ));
            }
        }
        if !user.all_channels && !channels_allowed(user, cmd.name, args) {
            return Err(
                "NOPERM this user has no permissions to access one of the channels used as arguments"
                    .into(),
            );
        }
        // A shard channel sits at a key's position to be routed by its slot, but is no key:
        // channel rules, not key patterns, govern it.
        if !user.all_keys && cmd.flags & command::PUBSUB == 0 {
            for key in dcache_protocol::commands::keys(cmd.spec, &args).map(|i| args.get(i)) {
                if !user
                    .patterns
                    .iter()
                    .any(|p| dcache_store::glob_match(p, key))
                {
                    return Err("NOPERM No permissions to access a key".into());
                }
            }
        }
        Ok(())
    }

    /// Whether `password` opens `user` (an enabled user with that password, or with `nopass`).
    /// `requirepass` is the default user's password.
    #[must_use]
    pub fn authenticate(&self, user: &[u8], password: &[u8], requirepass: &str) -> bool {
        let users = self.users.read();
        let Some(found) = std::str::from_utf8(user).ok().and_then(|u| users.get(u)) else {
            return false;
        };
        if !found.enabled {
            return false;
        }
        if found.name == "default" {
            return requirepass.is_empty() || constant_time_eq(password, requirepass.as_bytes());
        }
        let hash = sha256(password);
        // Every stored hash is compared, so the time does not say which one matched.
        let matched = found
            .passwords
            .iter()
            .fold(false, |hit, p| constant_time_eq(&hash, p) | hit);
        found.nopass || matched
    }

    /// A copy of one user, with the default user's password taken from `requirepass`.
    #[must_use]
    pub fn user(&self, name: &[u8], requirepass: &str) -> Option<User> {
        let name = std::str::from_utf8(name).ok()?;
        let mut user = self.users.read().get(name)?.clone();
        if user.name == "default" {
            user.nopass = requirepass.is_empty();
            user.passwords = if requirepass.is_empty() {
                Vec::new()
            } else {
                vec![sha256(requirepass.as_bytes())]
            };
        }
        Some(user)
    }

    /// Every user's name, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.users.read().keys().cloned().collect()
    }

    /// Creates or changes a user with `rules`, all or none. For `default`, returns the new
    /// `requirepass` when its password rules changed it.
    ///
    /// # Errors
    /// The first rule that is invalid, with Redis's reason.
    pub fn set_user(
        &self,
        name: &str,
        rules: &[&[u8]],
        requirepass: &str,
    ) -> Result<Option<String>, RuleError> {
        let mut users = self.users.write();
        let mut user = match users.get(name) {
            Some(u) => u.clone(),
            None => User::new(name),
        };
        let is_default = name == "default";
        if is_default {
            user.nopass = requirepass.is_empty();
        }
        let mut new_password = None;
        for rule in rules {
            let error = |reason| RuleError {
                rule: String::from_utf8_lossy(rule).into_owned(),
                reason,
            };
            if is_default {
                // The default user's password is requirepass: one password, or none.
                match rule.first() {
                    Some(b'>') => {
                        new_password = Some(String::from_utf8_lossy(&rule[1..]).into_owned());
                        continue;
                    }
                    _ if rule.eq_ignore_ascii_case(b"nopass") => {
                        new_password = Some(String::new());
                        continue;
                    }
                    Some(b'<' | b'#') => {
                        return Err(error(
                            "dcache's default user has one password, requirepass: set it with '>password' or 'nopass'",
                        ));
                    }
                    _ if rule.eq_ignore_ascii_case(b"off")
                        || rule.eq_ignore_ascii_case(b"reset")
                        || rule.eq_ignore_ascii_case(b"resetpass") =>
                    {
                        return Err(error(
                            "dcache's default user cannot be disabled or left without a way to authenticate",
                        ));
                    }
                    _ => {}
                }
            }
            user.apply(rule).map_err(error)?;
        }
        users.insert(name.to_owned(), user);
        self.refresh_open(&users);
        Ok(new_password)
    }

    /// Deletes users; returns how many existed.
    ///
    /// # Errors
    /// Asked to delete `default`.
    pub fn delete_users(&self, names: &[&str]) -> Result<usize, &'static str> {
        if names.contains(&"default") {
            return Err("ERR The 'default' user cannot be removed");
        }
        let mut users = self.users.write();
        let deleted = names.iter().filter(|n| users.remove(**n).is_some()).count();
        self.refresh_open(&users);
        Ok(deleted)
    }
}

/// The names of the units in `category` (`ACL CAT name`).
///
/// # Errors
/// An unknown category.
pub fn category_members(category: &str) -> Result<Vec<&'static str>, String> {
    let bit = category_bit(&category.to_ascii_lowercase())
        .ok_or_else(|| format!("ERR Unknown category '{category}'"))?;
    Ok(UNITS
        .units
        .iter()
        .filter(|u| u.categories & bit != 0)
        .map(|u| u.fullname.as_str())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(words: &[&str]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for w in words {
            spans.push((data.len(), data.len() + w.len()));
            data.extend_from_slice(w.as_bytes());
        }
        (data, spans)
    }

    fn check(acl: &Acl, user: &str, words: &[&str]) -> Result<(), String> {
        let (data, spans) = args_of(words);
        let (index, _) = command::lookup(words[0].as_bytes()).expect("a command");
        acl.check(user, index, Args::new(&data, &spans))
    }

    #[test]
    fn categories_follow_redis() {
        let cats = |name: &str| {
            let (i, _) = command::lookup(name.as_bytes()).unwrap();
            command_categories(&command::table()[i])
        };
        assert_eq!(cats("get"), ["read", "string", "fast"]);
        assert_eq!(cats("set"), ["write", "string", "slow"]);
        assert_eq!(cats("del"), ["keyspace", "write", "slow"]);
        assert_eq!(cats("keys"), ["keyspace", "read", "slow", "dangerous"]);
        assert_eq!(cats("flushall"), ["keyspace", "write", "slow", "dangerous"]);
        assert_eq!(cats("config"), ["admin", "slow", "dangerous"]);
        assert_eq!(cats("hget"), ["read", "hash", "fast"]);
        assert_eq!(cats("ping"), ["fast", "connection"]);
        let admin = category_members("admin").unwrap();
        for name in ["config|get", "config|set", "client|kill", "acl|setuser"] {
            assert!(admin.contains(&name), "{name} in @admin");
        }
        for name in ["client|id", "get", "flushall", "acl|whoami"] {
            assert!(!admin.contains(&name), "{name} not in @admin");
        }
        assert!(category_members("nosuch").is_err());
    }

    #[test]
    fn every_name_with_extra_categories_is_a_unit() {
        for name in EXTRA.iter().map(|(n, _)| *n) {
            assert!(
                UNITS.units.iter().any(|u| u.fullname == name),
                "{name} is a unit"
            );
        }
    }

    #[test]
    fn an_app_user_is_held_to_its_keys_and_categories() {
        let acl = Acl::default();
        assert!(check(&acl, "default", &["config", "get", "x"]).is_ok());
        let rules: Vec<&[u8]> = ["on", ">pw", "~app:*", "+@read", "+@write", "-@admin"]
            .iter()
            .map(|r| r.as_bytes())
            .collect();
        assert_eq!(acl.set_user("app", &rules, ""), Ok(None));
        assert!(check(&acl, "app", &["get", "app:1"]).is_ok());
        assert!(check(&acl, "app", &["mset", "app:1", "v", "app:2", "v"]).is_ok());
        assert_eq!(
            check(&acl, "app", &["mset", "app:1", "v", "other", "v"]),
            Err("NOPERM No permissions to access a key".into())
        );
        assert_eq!(
            check(&acl, "app", &["config", "get", "maxmemory"]),
            Err("NOPERM User app has no permissions to run the 'config|get' command".into())
        );
        assert_eq!(
            check(&acl, "app", &["client", "id"]),
            Err("NOPERM User app has no permissions to run the 'client|id' command".into())
        );
        // An unknown subcommand needs the whole container.
        assert!(check(&acl, "app", &["config", "nosuch"]).is_err());
        // AUTH, HELLO and QUIT are never refused.
        assert!(check(&acl, "app", &["auth", "x"]).is_ok());
        // As in Redis, FLUSHALL and KEYS are @write/@read and @dangerous, not @admin.
        assert!(check(&acl, "app", &["flushall"]).is_ok());
        let no_danger: &[&[u8]] = &[b"-@dangerous"];
        acl.set_user("app", no_danger, "").unwrap();
        assert!(check(&acl, "app", &["flushall"]).is_err());
        assert!(check(&acl, "app", &["keys", "*"]).is_err());
        assert_eq!(
            acl.user(b"app", "").unwrap().describe(),
            format!(
                "user app on #{} ~app:* resetchannels -@all +@read +@write -@admin -@dangerous",
                hex(&sha256(b"pw"))
            )
        );
    }

    #[test]
    fn passwords_and_switches() {
        let acl = Acl::default();
        let rules: &[&[u8]] = &[b"on", b">a", b">b"];
        acl.set_user("u", rules, "").unwrap();
        assert!(acl.authenticate(b"u", b"a", ""));
        assert!(acl.authenticate(b"u", b"b", ""));
        assert!(!acl.authenticate(b"u", b"c", ""));
        assert!(!acl.authenticate(b"nobody", b"a", ""));
        let rules: &[&[u8]] = &[b"<a"];
        acl.set_user("u", rules, "").unwrap();
        assert!(!acl.authenticate(b"u", b"a", ""));
        let err = acl.set_user("u", rules, "").unwrap_err();
        assert_eq!(
            err.reason,
            "The password you are trying to remove from the user does not exist"
        );
        let rules: &[&[u8]] = &[b"off"];
        acl.set_user("u", rules, "").unwrap();
        assert!(!acl.authenticate(b"u", b"b", ""), "a disabled user");
        // All or nothing: the bad rule leaves the user as it was.
        let rules: &[&[u8]] = &[b"on", b"bogus"];
        assert_eq!(
            acl.set_user("u", rules, "").unwrap_err().reason,
            "Syntax error"
        );
        assert!(!acl.user(b"u", "").unwrap().enabled);
        let rules: &[&[u8]] = &[b"+nosuch"];
        assert_eq!(
            acl.set_user("u", rules, "").unwrap_err().reason,
            "Unknown command or category name in ACL"
        );
        // The default user's password is requirepass.
        assert!(acl.authenticate(b"default", b"anything", ""));
        assert!(acl.authenticate(b"default", b"pw", "pw"));
        assert!(!acl.authenticate(b"default", b"nope", "pw"));
        let rules: &[&[u8]] = &[b">new"];
        assert_eq!(acl.set_user("default", rules, "pw"), Ok(Some("new".into())));
        assert_eq!(acl.delete_users(&["u", "ghost"]), Ok(1));
        assert!(acl.delete_users(&["default"]).is_err());
    }
}
