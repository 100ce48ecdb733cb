//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE,
//! PUBLISH, SPUBLISH, PUBSUB. The registry and the delivery are `crate::pubsub`'s.

use dcache_protocol::Args;

use super::{CmdResult, Ctx, Error, help, subcommand_arity, unknown_subcommand};
use crate::pubsub::Kind;

/// What a RESP2 client may run while it is subscribed to anything (Redis's list, by name).
pub const SUBSCRIBED_MODE: &[&str] = &[
    "ping",
    "subscribe",
    "ssubscribe",
    "psubscribe",
    "unsubscribe",
    "sunsubscribe",
    "punsubscribe",
    "quit",
    "reset",
];

/// The refusal of another command in RESP2's subscribed mode; `name` is the command's full
/// name (`client|id` for a subcommand).
#[must_use]
pub fn subscribed_mode_error(name: &str) -> String {
    format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

fn subscribe_to(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let client = std::sync::Arc::clone(&ctx.conn.info);
    for name in args.iter_from(1) {
        ctx.shared
            .pubsub
            .subscribe(&client, kind, name, &mut ctx.out);
    }
    Ok(())
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let names: Vec<&[u8]> = args.iter_from(1).collect();
    ctx.shared
        .pubsub
        .unsubscribe(&ctx.conn.info, kind, &names, &mut ctx.out);
    Ok(())
}

pub fn subscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_to(ctx, args, Kind::Channel)
}

pub fn psubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_to(ctx, args, Kind::Pattern)
}

pub fn ssubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_to(ctx, args, Kind::Shard)
}

pub fn unsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Channel)
}

pub fn punsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Pattern)
}

pub fn sunsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Shard)
}

/// PUBLISH channel message: the number of clients of this node that received it, as Redis
/// Cluster counts; the other members deliver it to theirs.
pub fn publish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let id = ctx.conn.info.id;
    let n = crate::pubsub::publish(
        ctx.shared,
        args.get(1),
        args.get(2),
        Some((id, &mut ctx.out)),
    );
    ctx.out.int(n as i64);
    Ok(())
}

/// SPUBLISH shardchannel message: routed to a copy of the channel's slot by its key position.
pub fn spublish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let id = ctx.conn.info.id;
    let n = crate::pubsub::spublish(
        ctx.shared,
        args.get(1),
        args.get(2),
        Some((id, &mut ctx.out)),
    );
    ctx.out.int(n as i64);
    Ok(())
}

/// `CLUSTER PUBLISH|SPUBLISH channel message`, from another member: delivered here only.
pub fn deliver_forwarded(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let n = ctx
        .shared
        .pubsub
        .deliver(kind, args.get(2), args.get(3), None);
    ctx.out.int(n as i64);
    Ok(())
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB, HELP: this node's view, as in
/// Redis Cluster.
pub fn pubsub(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let n = args.len();
    let syntax = || {
        Error::from(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            super::truncate_lossy(sub, 128)
        ))
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"HELP" | b"NUMPAT" if n != 2 => return Err(subcommand_arity("pubsub", sub)),
        b"HELP" => help(&mut ctx.out, PUBSUB_HELP),
        b"NUMPAT" => {
            let [_, patterns, _] = ctx.shared.pubsub.sizes();
            ctx.out.int(patterns as i64);
        }
        b"CHANNELS" | b"SHARDCHANNELS" => {
            if n > 3 {
                return Err(syntax());
            }
            let kind = if sub.len() == 8 {
                Kind::Channel
            } else {
                Kind::Shard
            };
            let pattern = (n == 3).then(|| args.get(2));
            let channels = ctx.shared.pubsub.channels(kind, pattern);
            ctx.out.array(channels.len());
            for channel in &channels {
                ctx.out.bulk(channel);
            }
        }
        b"NUMSUB" | b"SHARDNUMSUB" => {
            let kind = if sub.len() == 6 {
                Kind::Channel
            } else {
                Kind::Shard
            };
            // An array even in RESP3, as Redis answers.
            ctx.out.array(2 * (n - 2));
            for channel in args.iter_from(2) {
                ctx.out.bulk(channel);
                ctx.out.int(ctx.shared.pubsub.numsub(kind, channel) as i64);
            }
        }
        _ => return Err(unknown_subcommand(sub, "pubsub")),
    }
    Ok(())
}
