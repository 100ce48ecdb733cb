//! Client-side caching (Redis 6's `CLIENT TRACKING`): the node remembers which clients read
//! which keys and tells them, once, when such a key changes, so that they may keep values in a
//! local cache.
//!
//! ```text
//!   read by a tracked client (READONLY command) ──► table: key → client ids
//!   write (WRITE command that succeeded)  ─┐
//!   expiry, eviction, slot dropped         ├─► invalidate(key): the table's ids for the key are
//!     (the store's RemovedKeys sink)       │     sent `invalidate [key]` and forgotten; BCAST
//!   write arriving by replication         ─┘     clients whose prefix matches are sent it too
//!   FLUSHDB / FLUSHALL ──► every tracking client is sent a null invalidation, the table cleared
//! ```
//!
//! Delivery is a push to the client's mailbox ([`crate::state::ClientInfo::push`]): `>2
//! invalidate [keys]` to a RESP3 client; with `REDIRECT id`, to client `id` instead, as a pub/sub
//! `message` on `__redis__:invalidate` when that client speaks RESP2. Redis sends the RESP2 form
//! only to a redirect client that is subscribed; dcache pushes it to the redirect client
//! whatever it is doing (a client that names a redirect asks for it). A redirect client that is
//! gone gets its tracked client a `tracking-redir-broken` push (RESP3), at the next invalidation,
//! as in Redis.
//!
//! What is exact and what is not, against Redis 7.0:
//! * a write invalidates the keys at its key positions when the command succeeded, whether or
//!   not it changed them (`SET k v NX` on an existing key invalidates; Redis does not): a
//!   client sees at worst an extra miss;
//! * BCAST clients get one message per prefix per command (Redis: per prefix per event-loop
//!   turn, its keys in lexical order; here in the order written);
//! * the table is bounded by `tracking-table-max-keys`: past it, keys are forgotten (in the
//!   hash table's order, not at random) and their clients sent an invalidation, as Redis does.
//!
//! Untracked traffic pays one relaxed atomic load per command ([`Tracking::active`]); the rest
//! runs only while some client tracks.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use dcache_protocol::ReplyWriter;
use parking_lot::Mutex;

use crate::state::Shared;

/// The channel a RESP2 redirect client receives invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// `tracking-table-max-keys`'s default, Redis's.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// The node's tracking state.
#[derive(Debug)]
pub struct Tracking {
    /// Clients with tracking on, in any mode. Zero: every hook returns at once.
    clients_on: AtomicUsize,
    /// `tracking-table-max-keys` (0: no bound).
    max_keys: AtomicUsize,
    inner: Mutex<Inner>,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            clients_on: AtomicUsize::new(0),
            max_keys: AtomicUsize::new(DEFAULT_MAX_KEYS),
            inner: Mutex::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    modes: hashbrown::HashMap<u64, Mode>,
    /// Key → the ids of the clients that read it since it last changed (default mode). Ids of
    /// clients that left or turned tracking off are dropped lazily, when the key changes.
    table: hashbrown::HashMap<Box<[u8]>, Vec<u64>>,
    /// BCAST prefixes and their clients.
    prefixes: Vec<(Box<[u8]>, Vec<u64>)>,
    /// Client ids in `table`, all keys together (`INFO`'s `tracking_total_items`).
    items: usize,
}

/// The tracking table's sizes (see [`Tracking::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub clients: usize,
    pub keys: usize,
    pub items: usize,
    pub prefixes: usize,
}

/// One tracking client's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mode {
    /// 0: none.
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// The redirect client was found gone.
    pub broken_redirect: bool,
    pub prefixes: Vec<Box<[u8]>>,
}

/// What a connection keeps for itself: whether its reads are remembered, and `CLIENT CACHING`
/// for its next command.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnTracking {
    /// Tracking on, not BCAST: reads may be remembered.
    pub remember: bool,
    pub optin: bool,
    pub optout: bool,
    /// `CLIENT CACHING YES` (OPTIN) or `NO` (OPTOUT) given for the next command.
    pub caching: bool,
}

/// An invalidation's payload.
enum Payload<'a> {
    Keys(&'a [&'a [u8]]),
    /// Every key (a flush).
    All,
}

impl Tracking {
    /// Whether any client tracks: one relaxed load.
    #[must_use]
    pub fn active(&self) -> bool {
        self.clients_on.load(Relaxed) != 0
    }

    pub fn set_max_keys(&self, n: usize) {
        self.max_keys.store(n, Relaxed);
    }

    /// The client's options, when it tracks.
    #[must_use]
    pub fn mode(&self, id: u64) -> Option<Mode> {
        if !self.active() {
            return None;
        }
        self.inner.lock().modes.get(&id).cloned()
    }

    /// For `INFO`: clients with tracking on, keys in the table, client ids in it (a client
    /// that read N tracked keys counts N times; ids of clients that left go lazily, as in
    /// Redis), and BCAST prefixes.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let inner = self.inner.lock();
        Counts {
            clients: self.clients_on.load(Relaxed),
            keys: inner.table.len(),
            items: inner.items,
            prefixes: inner.prefixes.len(),
        }
    }

    /// Turns tracking on for client `id`, or changes its options; the caller has checked them.
    /// New prefixes add to those it had.
    fn enable(&self, shared: &Shared, id: u64, mut mode: Mode, new_prefixes: Vec<Box<[u8]>>) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.modes.remove(&id) {
            mode.prefixes = old.prefixes;
        } else if self.clients_on.fetch_add(1, Relaxed) == 0 {
            shared.store.removed_keys().set_on(true);
        }
        if mode.bcast {
            for prefix in new_prefixes {
                if mode.prefixes.contains(&prefix) {
                    continue;
                }
                match inner.prefixes.iter_mut().find(|(p, _)| *p == prefix) {
                    Some((_, ids)) => ids.push(id),
                    None => inner.prefixes.push((prefix.clone(), vec![id])),
                }
                mode.prefixes.push(prefix);
            }
        }
        inner.modes.insert(id, mode);
    }

    /// Turns tracking off for client `id` (also when it leaves). Its entries in the key table
    /// go lazily.
    pub fn disable(&self, shared: &Shared, id: u64) {
        if !self.active() {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(mode) = inner.modes.remove(&id) {
            if self.clients_on.fetch_sub(1, Relaxed) == 1 {
                shared.store.removed_keys().set_on(false);
            }
            for prefix in &mode.prefixes {
                if let Some(at) = inner.prefixes.iter().position(|(p, _)| p == prefix) {
                    let ids = &mut inner.prefixes[at].1;
                    ids.retain(|&c| c != id);
                    if ids.is_empty() {
                        inner.prefixes.swap_remove(at);
                    }
                }
            }
        }
        if inner.modes.is_empty() {
            // Nobody left to tell: what the table holds can never be sent.
            inner.table = hashbrown::HashMap::new();
            inner.items = 0;
        }
    }

    /// Remembers that client `id` read `keys` (default mode); forgets keys past the table's
    /// bound, telling their clients.
    fn remember<'k>(&self, shared: &Shared, id: u64, keys: impl Iterator<Item = &'k [u8]>) {
        let mut evicted = Vec::new();
        {
            let mut inner = self.inner.lock();
            for key in keys {
                match inner.table.get_mut(key) {
                    Some(ids) if ids.contains(&id) => continue,
                    Some(ids) => ids.push(id),
                    None => {
                        inner.table.insert(key.into(), vec![id]);
                    }
                }
                inner.items += 1;
            }
            let max = self.max_keys.load(Relaxed);
            if max != 0 && inner.table.len() > max {
                let excess = inner.table.len() - max;
                let victims: Vec<Box<[u8]>> = inner.table.keys().take(excess).cloned().collect();
                for key in victims {
                    if let Some(ids) = inner.table.remove(&key) {
                        inner.items -= ids.len();
                        evicted.push((key, ids));
                    }
                }
            }
        }
        for (key, ids) in evicted {
            let mut sends = Vec::new();
            {
                let inner = self.inner.lock();
                for id in ids {
                    if let Some(mode) = inner.modes.get(&id).filter(|m| !m.bcast) {
                        sends.push((id, mode.redirect));
                    }
                }
            }
            for (id, redirect) in sends {
                self.send(shared, id, redirect, &Payload::Keys(&[&key]));
            }
        }
    }

    /// `keys` changed, by client `writer` when it is a client's write (NOLOOP spares it).
    pub fn invalidate<'k>(
        &self,
        shared: &Shared,
        keys: impl Iterator<Item = &'k [u8]>,
        writer: Option<u64>,
    ) {
        if !self.active() {
            return;
        }
        // (client, its redirect, keys): gathered under the lock, sent after it.
        let mut default: Vec<(u64, u64, Box<[u8]>)> = Vec::new();
        // Per prefix and client, as Redis sends one message per prefix.
        let mut bcast: Vec<(usize, u64, u64, Vec<&[u8]>)> = Vec::new();
        {
            let mut inner = self.inner.lock();
            for key in keys {
                let Inner {
                    modes,
                    table,
                    prefixes,
                    items,
                } = &mut *inner;
                for (at, (prefix, ids)) in prefixes.iter().enumerate() {
                    if !key.starts_with(prefix) {
                        continue;
                    }
                    for &id in ids {
                        let Some(mode) = modes.get(&id) else { continue };
                        if mode.noloop && Some(id) == writer {
                            continue;
                        }
                        match bcast.iter_mut().find(|(p, c, _, _)| *p == at && *c == id) {
                            Some((_, _, _, keys)) => {
                                if !keys.contains(&key) {
                                    keys.push(key);
                                }
                            }
                            None => bcast.push((at, id, mode.redirect, vec![key])),
                        }
                    }
                }
                let Some(ids) = table.remove(key) else {
                    continue;
                };
                *items -= ids.len();
                for id in ids {
                    // Gone, off, or in BCAST mode now: none of these is owed this.
                    let Some(mode) = modes.get(&id).filter(|m| !m.bcast) else {
                        continue;
                    };
                    if mode.noloop && Some(id) == writer {
                        continue;
                    }
                    default.push((id, mode.redirect, key.into()));
                }
            }
        }
        // Redis sends one message per key to a default-mode client.
        for (id, redirect, key) in default {
            self.send(shared, id, redirect, &Payload::Keys(&[&key]));
        }
        for (_, id, redirect, keys) in bcast {
            self.send(shared, id, redirect, &Payload::Keys(&keys));
        }
    }

    /// Every key changed (FLUSHDB, FLUSHALL): every tracking client is sent a null
    /// invalidation, and the table is emptied.
    pub fn invalidate_all(&self, shared: &Shared) {
        if !self.active() {
            return;
        }
        let sends: Vec<(u64, u64)> = {
            let mut inner = self.inner.lock();
            inner.table = hashbrown::HashMap::new();
            inner.items = 0;
            inner
                .modes
                .iter()
                .map(|(&id, m)| (id, m.redirect))
                .collect()
        };
        for (id, redirect) in sends {
            self.send(shared, id, redirect, &Payload::All);
        }
    }

    /// Sends one invalidation to tracking client `id` (or its redirect), as Redis's
    /// `sendTrackingMessage` does.
    fn send(&self, shared: &Shared, id: u64, redirect: u64, payload: &Payload<'_>) {
        let Some(client) = shared.client(id) else {
            return;
        };
        let target = if redirect == 0 {
            client
        } else if let Some(target) = shared.client(redirect) {
            target
        } else {
            if let Some(mode) = self.inner.lock().modes.get_mut(&id) {
                mode.broken_redirect = true;
            }
            if client.resp.load(Relaxed) == 3 {
                client.push(|w| {
                    w.push(2);
                    w.bulk(b"tracking-redir-broken");
                    w.int(redirect as i64);
                });
            }
            return;
        };
        let resp3 = target.resp.load(Relaxed) == 3;
        if !resp3 && redirect == 0 {
            // RESP2 has no pushes on the client's own connection: nothing can reach it.
            return;
        }
        target.push(|w| {
            if resp3 {
                w.push(2);
                w.bulk(b"invalidate");
            } else {
                w.push(3);
                w.bulk(b"message");
                w.bulk(CHANNEL);
            }
            write_payload(w, payload);
        });
    }
}

fn write_payload(w: &mut ReplyWriter<'_>, payload: &Payload<'_>) {
    match payload {
        Payload::Keys(keys) => {
            w.array(keys.len());
            for key in *keys {
                w.bulk(key);
            }
        }
        Payload::All => w.null(),
    }
}

/// After a command ran (called by dispatch only while some client tracks): its writes and the
/// store's removals are invalidated, its reads remembered, `CLIENT CACHING` used up.
pub(crate) fn after_command(
    ctx: &mut crate::command::Ctx<'_>,
    spec: &dcache_protocol::commands::CommandSpec,
    args: dcache_protocol::Args<'_>,
    failed: bool,
) {
    let shared = ctx.shared;
    let tracking = &shared.tracking;
    let id = ctx.conn.info.id;
    drain_removed(shared);
    let keys = || dcache_protocol::commands::keys(spec, &args).map(|i| args.get(i));
    if spec.flags & crate::command::WRITE != 0 && !failed {
        tracking.invalidate(shared, keys(), Some(id));
    }
    let conn = &mut ctx.conn.tracking;
    if spec.flags & crate::command::READONLY != 0
        && conn.remember
        // OPTIN: only after CLIENT CACHING YES; OPTOUT: unless after CLIENT CACHING NO.
        && (!conn.optin || conn.caching)
        && !(conn.optout && conn.caching)
    {
        tracking.remember(shared, id, keys());
    }
    // CLIENT CACHING applies to the command after it (CLIENT commands leave it, as in Redis).
    if spec.name != "client" {
        conn.caching = false;
    }
}

/// Invalidates what the store removed on its own since the last call (expiry, eviction, slots
/// dropped).
pub fn drain_removed(shared: &Shared) {
    let removed = shared.store.removed_keys().take();
    if !removed.is_empty() {
        shared
            .tracking
            .invalidate(shared, removed.iter().map(|k| &k[..]), None);
    }
}

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`,
/// with Redis's checks in Redis's order.
pub(crate) fn client_tracking(
    ctx: &mut crate::command::Ctx<'_>,
    args: dcache_protocol::Args<'_>,
) -> crate::command::CmdResult {
    use crate::command::{Error, SYNTAX, int_arg, is};
    let mut redirect: i64 = 0;
    let mut mode = Mode::default();
    let mut prefixes: Vec<Box<[u8]>> = Vec::new();
    let mut j = 3;
    while j < args.len() {
        let arg = args.get(j);
        let more = j + 1 < args.len();
        if is(arg, "REDIRECT") && more {
            j += 1;
            if redirect != 0 {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            redirect = int_arg(args.get(j))?;
            if u64::try_from(redirect)
                .ok()
                .and_then(|id| ctx.shared.client(id))
                .is_none()
            {
                return Err("ERR The client ID you want redirect to does not exist".into());
            }
        } else if is(arg, "BCAST") {
            mode.bcast = true;
        } else if is(arg, "OPTIN") {
            mode.optin = true;
        } else if is(arg, "OPTOUT") {
            mode.optout = true;
        } else if is(arg, "NOLOOP") {
            mode.noloop = true;
        } else if is(arg, "PREFIX") && more {
            j += 1;
            prefixes.push(args.get(j).into());
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    let id = ctx.conn.info.id;
    let tracking = &ctx.shared.tracking;
    let on = args.get(2);
    if is(on, "OFF") {
        tracking.disable(ctx.shared, id);
        ctx.conn.tracking = ConnTracking::default();
        ctx.out.ok();
        return Ok(());
    }
    if !is(on, "ON") {
        return Err(SYNTAX.into());
    }
    if !mode.bcast && !prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    let old = tracking.mode(id);
    if let Some(old) = &old
        && old.bcast != mode.bcast
    {
        return Err(Error::from(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast && (mode.optin || mode.optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if mode.optin && mode.optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if let Some(old) = &old
        && ((mode.optin && old.optout) || (mode.optout && old.optin))
    {
        return Err(Error::from(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast {
        check_prefixes(&prefixes, old.as_ref().map_or(&[][..], |m| &m.prefixes))?;
        if prefixes.is_empty() {
            // BCAST without a prefix: every key.
            prefixes.push(Box::default());
        }
    }
    mode.redirect = redirect as u64;
    // Enabling again keeps CLIENT CACHING only if the mode it belongs to stays.
    let caching = ctx.conn.tracking.caching && (mode.optin || mode.optout);
    ctx.conn.tracking = ConnTracking {
        remember: !mode.bcast,
        optin: mode.optin,
        optout: mode.optout,
        caching,
    };
    tracking.enable(ctx.shared, id, mode, prefixes);
    ctx.out.ok();
    Ok(())
}

/// Redis's `checkPrefixCollisionsOrReply`: two prefixes of one client may not overlap (one a
/// prefix of the other), among the new ones or with those it has.
fn check_prefixes(new: &[Box<[u8]>], old: &[Box<[u8]>]) -> crate::command::CmdResult {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    for (i, p) in new.iter().enumerate() {
        if let Some(q) = old.iter().find(|q| overlap(q, p)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(q)
            )
            .into());
        }
        if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(q)
            )
            .into());
        }
    }
    Ok(())
}

/// `CLIENT CACHING YES|NO`.
pub(crate) fn client_caching(
    ctx: &mut crate::command::Ctx<'_>,
    args: dcache_protocol::Args<'_>,
) -> crate::command::CmdResult {
    use crate::command::{SYNTAX, is};
    if ctx.shared.tracking.mode(ctx.conn.info.id).is_none() {
        return Err(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"
                .into(),
        );
    }
    let conn = &mut ctx.conn.tracking;
    let opt = args.get(2);
    if is(opt, "YES") {
        if !conn.optin {
            return Err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
                    .into(),
            );
        }
    } else if is(opt, "NO") {
        if !conn.optout {
            return Err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
                    .into(),
            );
        }
    } else {
        return Err(SYNTAX.into());
    }
    conn.caching = true;
    ctx.out.ok();
    Ok(())
}

/// `CLIENT GETREDIR`: the redirect id, 0 for none, -1 when tracking is off.
pub(crate) fn client_getredir(ctx: &mut crate::command::Ctx<'_>) {
    let redirect = ctx
        .shared
        .tracking
        .mode(ctx.conn.info.id)
        .map_or(-1, |m| m.redirect as i64);
    ctx.out.int(redirect);
}

/// `CLIENT TRACKINGINFO`, in Redis's shape: flags (a set), redirect, prefixes.
pub(crate) fn client_trackinginfo(ctx: &mut crate::command::Ctx<'_>) {
    let mode = ctx.shared.tracking.mode(ctx.conn.info.id);
    let caching = ctx.conn.tracking.caching;
    let mut flags: Vec<&str> = Vec::new();
    match &mode {
        None => flags.push("off"),
        Some(m) => {
            flags.push("on");
            if m.bcast {
                flags.push("bcast");
            }
            if m.optin {
                flags.push("optin");
                if caching {
                    flags.push("caching-yes");
                }
            }
            if m.optout {
                flags.push("optout");
                if caching {
                    flags.push("caching-no");
                }
            }
            if m.noloop {
                flags.push("noloop");
            }
            if m.broken_redirect {
                flags.push("broken_redirect");
            }
        }
    }
    let out = &mut ctx.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    for flag in flags {
        out.bulk(flag.as_bytes());
    }
    out.bulk(b"redirect");
    out.int(mode.as_ref().map_or(-1, |m| m.redirect as i64));
    out.bulk(b"prefixes");
    let prefixes = mode.map(|m| m.prefixes).unwrap_or_default();
    // A BCAST client without PREFIX tracks the empty prefix; Redis lists it as "".
    out.array(prefixes.len());
    for prefix in prefixes {
        out.bulk(&prefix);
    }
}

/// `CLIENT LIST`'s tracking flags (`t`, `R` for a broken redirect, `B` for BCAST) and `redir`.
#[must_use]
pub fn list_flags(shared: &Shared, id: u64) -> Option<(String, i64)> {
    let mode = shared.tracking.mode(id)?;
    let mut flags = String::from("t");
    if mode.broken_redirect {
        flags.push('R');
    }
    if mode.bcast {
        flags.push('B');
    }
    Some((flags, mode.redirect as i64))
}
