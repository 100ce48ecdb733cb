//! Lua scripts (`EVAL`, `EVALSHA`, `SCRIPT …`) with Redis 7.0's semantics, on Lua 5.1 through
//! `mlua` (vendored: the C sources build with the crate).
//!
//! ```text
//!   EVAL/EVALSHA ──► Scripts::take_vm ──► Vm (one Lua state; compiled scripts by SHA-1)
//!        │                                   │
//!        │           run::run_script ────────┤ KEYS/ARGV set, script called under xpcall
//!        │                │                  │
//!        │                └─ redis.call ──► command::execute on a scratch buffer ──► Lua values
//!        └─ reply: the script's value converted to RESP (convert.rs), VM back to the pool
//! ```
//!
//! What is node-wide lives in [`Scripts`]: the script cache (SHA-1 → body, what `SCRIPT LOAD`,
//! `EXISTS` and `FLUSH` see), the pool of idle Lua states, Redis's `lrand48` state behind
//! `math.random`, and the scripts running now, which `SCRIPT KILL` and the `-BUSY` answer read.
//!
//! A Lua state is not shared while a script runs: a script takes one from the pool and gives it
//! back, so scripts of several connections never wait on each other's Lua lock. Each state
//! compiles a script on its first use; `SCRIPT FLUSH` bumps an epoch that makes every state drop
//! what it compiled.
//!
//! Atomicity with respect to other clients' commands is not this module's: the node's exclusive
//! gate wraps [`run::run_script`], the one place a script body runs.

mod cjson;
mod convert;
mod loan;
mod run;
mod vm;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

pub use run::{ScriptCall, run_script};
pub use vm::Vm;

/// `-NOSCRIPT` for an unknown SHA-1.
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
/// What other clients are answered while a script runs past `busy-reply-threshold`.
pub const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// Idle Lua states kept for reuse; more are dropped when given back.
const POOL: usize = 32;

/// The state of one running script that other connections can see and change.
#[derive(Debug, Default)]
pub struct RunFlags {
    /// Set by `SCRIPT KILL`; the script's instruction hook then raises an error.
    pub kill: AtomicBool,
    /// Set once the script ran a write command: it can no longer be killed.
    pub wrote: AtomicBool,
}

#[derive(Debug)]
struct Running {
    client: u64,
    flags: Arc<RunFlags>,
}

/// Node-wide scripting state (see the module docs).
#[derive(Debug)]
pub struct Scripts {
    cache: Mutex<hashbrown::HashMap<String, Arc<[u8]>>>,
    /// Bumped by `SCRIPT FLUSH`: Lua states compiled under an older epoch forget their scripts.
    epoch: AtomicU64,
    vms: Mutex<Vec<Vm>>,
    /// Redis's `lrand48` state, shared by every script as Redis's one Lua state shares it.
    pub(crate) rand: Arc<Mutex<u64>>,
    running: Mutex<Vec<Running>>,
    /// How many scripts run now: the per-request `-BUSY` check reads only this when it is 0.
    running_count: AtomicUsize,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            cache: Mutex::default(),
            epoch: AtomicU64::new(0),
            vms: Mutex::default(),
            rand: Arc::new(Mutex::new(vm::LRAND48_SEED)),
            running: Mutex::default(),
            running_count: AtomicUsize::new(0),
        }
    }
}

/// The lower-case hex SHA-1 of `body`, the name `EVALSHA` calls a script by.
#[must_use]
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

impl Scripts {
    /// Adds a script to the cache; its SHA-1.
    pub fn store(&self, sha: &str, body: &[u8]) {
        let mut cache = self.cache.lock();
        if !cache.contains_key(sha) {
            cache.insert(sha.to_owned(), Arc::from(body));
        }
    }

    /// The body of a cached script, by its (lower-case) SHA-1.
    #[must_use]
    pub fn body(&self, sha: &str) -> Option<Arc<[u8]>> {
        self.cache.lock().get(sha).cloned()
    }

    /// Whether a script is cached; any case of hex digits.
    #[must_use]
    pub fn exists(&self, sha: &[u8]) -> bool {
        sha.len() == 40
            && self
                .cache
                .lock()
                .contains_key(String::from_utf8_lossy(sha).to_ascii_lowercase().as_str())
    }

    /// Empties the cache (`SCRIPT FLUSH`); Lua states forget what they compiled.
    pub fn flush(&self) {
        let old = std::mem::take(&mut *self.cache.lock());
        self.epoch.fetch_add(1, Ordering::Relaxed);
        // Idle states are cheap to make again; dropping them frees their compiled scripts now.
        let idle = std::mem::take(&mut *self.vms.lock());
        drop((old, idle));
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// A Lua state for one script run: an idle one, or a new one.
    ///
    /// # Errors
    /// Lua could not be set up (out of memory).
    pub fn take_vm(&self) -> Result<Vm, String> {
        let vm = self.vms.lock().pop();
        match vm {
            Some(vm) => Ok(vm),
            None => Vm::new(Arc::clone(&self.rand)).map_err(|e| format!("ERR {e}")),
        }
    }

    /// Gives a Lua state back after a run.
    pub fn give_vm(&self, vm: Vm) {
        let mut vms = self.vms.lock();
        if vms.len() < POOL {
            vms.push(vm);
        }
    }

    /// Records that `client` runs a script from now until the guard drops.
    pub fn start(&self, client: u64, flags: Arc<RunFlags>) -> RunningGuard<'_> {
        flags.kill.store(false, Ordering::Relaxed);
        flags.wrote.store(false, Ordering::Relaxed);
        self.running.lock().push(Running { client, flags });
        self.running_count.fetch_add(1, Ordering::Release);
        RunningGuard {
            scripts: self,
            client,
        }
    }

    /// `SCRIPT KILL` from `client`: stops the scripts other clients run, unless one of them has
    /// written (`-UNKILLABLE`) or none runs (`-NOTBUSY`).
    ///
    /// # Errors
    /// The error reply.
    pub fn kill(&self, client: u64) -> Result<(), &'static str> {
        let running = self.running.lock();
        let others: Vec<&Running> = running.iter().filter(|r| r.client != client).collect();
        if others.is_empty() {
            return Err(NOTBUSY);
        }
        if others.iter().any(|r| r.flags.wrote.load(Ordering::Relaxed)) {
            return Err(UNKILLABLE);
        }
        for r in others {
            r.flags.kill.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Takes a running script out of [`Scripts`]' list when it ends, however it ends.
pub struct RunningGuard<'a> {
    scripts: &'a Scripts,
    client: u64,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        let mut running = self.scripts.running.lock();
        if let Some(i) = running.iter().position(|r| r.client == self.client) {
            running.swap_remove(i);
        }
        self.scripts.running_count.fetch_sub(1, Ordering::Release);
    }
}

/// Commands a script may not call: Redis 7.0's `noscript` flag, for the commands dcache has
/// (transactions, connection state, blocking pops, administration of the connection).
const NOSCRIPT_COMMANDS: &[&str] = &[
    "auth",
    "hello",
    "quit",
    "role",
    "wait",
    "blpop",
    "brpop",
    "blmove",
    "brpoplpush",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "script",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "monitor",
    "shutdown",
];

/// Subcommands a script may not call, as `container|sub` (Redis 7.0's `noscript`).
const NOSCRIPT_SUBCOMMANDS: &[&str] = &["acl", "client", "config"];

/// Whether a script may call this request (`args[0]` names a known command).
pub(crate) fn allowed_in_script(name: &str, args: &[&[u8]]) -> bool {
    if NOSCRIPT_COMMANDS.contains(&name) {
        return false;
    }
    if NOSCRIPT_SUBCOMMANDS.contains(&name) {
        // Every subcommand of these that dcache has is `noscript` in Redis, `HELP` aside.
        return args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"help"));
    }
    true
}

/// Whether a command may run while a script holds the node past `busy-reply-threshold`: the
/// ones that may end it (`SCRIPT KILL`, `SHUTDOWN`); everything else is answered [`BUSY`].
#[must_use]
pub fn may_end_busy(name: &str, args: dcache_protocol::Args<'_>) -> bool {
    match name {
        "script" => args.len() == 2 && args.get(1).eq_ignore_ascii_case(b"kill"),
        "shutdown" => true,
        _ => false,
    }
}

/// A share of the node's gate for a connection's next batch (`crate::exclusive`), or `None`
/// once a script has held the gate for `busy-reply-threshold`: then the batch runs without a
/// share and every request in it but those that may end the script ([`may_end_busy`]) is
/// answered [`BUSY`], as Redis answers while a long script runs. Before the threshold, and
/// while the holder is not a script (EXEC), the connection waits for its share.
pub async fn share_or_busy(shared: &crate::state::Shared) -> Option<crate::exclusive::Share<'_>> {
    loop {
        let threshold = Duration::from_millis(shared.read_config(|c| c.busy_reply_threshold));
        let script = shared.scripts.running_count.load(Ordering::Acquire) > 0;
        let wait = match shared.gate.held_for() {
            Some(held) if script => match threshold.checked_sub(held) {
                Some(left) if !left.is_zero() => left,
                _ => return None,
            },
            // A transaction, or a script that has not registered yet: look again later.
            _ => threshold.max(Duration::from_millis(10)),
        };
        tokio::select! {
            share = shared.gate.share() => return Some(share),
            () = tokio::time::sleep(wait) => {}
        }
    }
}
