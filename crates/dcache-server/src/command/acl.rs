//! ACL: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT. The users and the checks live in
//! `crate::acl`; this file is the command's surface, with Redis's replies.

use std::sync::atomic::Ordering::Relaxed;

use dcache_protocol::Args;

use super::{CmdResult, Ctx, Error, help, subcommand_arity, unknown_subcommand};
use crate::acl::CATEGORIES;

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "GETUSER <username>",
    "    Get the user's details.",
    "LIST",
    "    Show users details in config file format.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
];

pub fn acl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let n = args.len();
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(subcommand_arity("acl", sub))
        }
    };
    let acl = &ctx.shared.acl;
    match sub.to_ascii_uppercase().as_slice() {
        b"WHOAMI" => {
            arity(n == 2)?;
            let name = ctx.conn.info.user.lock().clone();
            ctx.out.bulk(name.as_bytes());
        }
        b"USERS" => {
            arity(n == 2)?;
            let names = acl.names();
            ctx.out.array(names.len());
            for name in names {
                ctx.out.bulk(name.as_bytes());
            }
        }
        b"LIST" => {
            arity(n == 2)?;
            let requirepass = ctx.shared.config().requirepass;
            let names = acl.names();
            ctx.out.array(names.len());
            for name in names {
                let line = acl
                    .user(name.as_bytes(), &requirepass)
                    .map(|u| u.describe())
                    .unwrap_or_default();
                ctx.out.bulk(line.as_bytes());
            }
        }
        b"GETUSER" => {
            arity(n == 3)?;
            let requirepass = ctx.shared.config().requirepass;
            let Some(user) = acl.user(args.get(2), &requirepass) else {
                ctx.out.null();
                return Ok(());
            };
            ctx.out.map(6);
            ctx.out.bulk(b"flags");
            let flags = user.flags();
            ctx.out.array(flags.len());
            for flag in flags {
                ctx.out.bulk(flag.as_bytes());
            }
            ctx.out.bulk(b"passwords");
            let hashes = user.password_hashes();
            ctx.out.array(hashes.len());
            for hash in hashes {
                ctx.out.bulk(hash.as_bytes());
            }
            ctx.out.bulk(b"commands");
            ctx.out.bulk(user.commands_description().as_bytes());
            ctx.out.bulk(b"keys");
            ctx.out.bulk(user.keys_description().as_bytes());
            ctx.out.bulk(b"channels");
            ctx.out.bulk(user.channels_description().as_bytes());
            ctx.out.bulk(b"selectors");
            ctx.out.array(0);
        }
        b"SETUSER" => {
            arity(n >= 3)?;
            let name = String::from_utf8_lossy(args.get(2)).into_owned();
            if name.contains(|c: char| c.is_whitespace()) {
                return Err("ERR Usernames can't contain spaces or null characters".into());
            }
            let rules: Vec<&[u8]> = args.iter_from(3).collect();
            let requirepass = ctx.shared.config().requirepass;
            let password = acl.set_user(&name, &rules, &requirepass).map_err(|e| {
                Error::from(format!(
                    "ERR Error in ACL SETUSER modifier '{}': {}",
                    e.rule, e.reason
                ))
            })?;
            if let Some(password) = password {
                ctx.shared.update_config(|c| c.requirepass = password);
            }
            // As in Redis, the user's clients subscribed to what it may no longer use are closed.
            if let Some(user) = acl.user(name.as_bytes(), &requirepass) {
                for client in ctx.shared.clients() {
                    if *client.user.lock() == name
                        && !client
                            .subscriptions
                            .all(|channel, is_pattern| user.may_use_channel(channel, is_pattern))
                    {
                        client.killed.store(true, Relaxed);
                        client.kill.notify_one();
                    }
                }
            }
            ctx.out.ok();
        }
        b"DELUSER" => {
            arity(n >= 3)?;
            let names: Vec<String> = args
                .iter_from(2)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let deleted = acl.delete_users(&refs).map_err(Error::from)?;
            // As in Redis, the deleted users' connections are closed.
            for client in ctx.shared.clients() {
                if names.contains(&*client.user.lock()) {
                    client.killed.store(true, Relaxed);
                    client.kill.notify_one();
                }
            }
            ctx.out.int(deleted as i64);
        }
        b"CAT" => match n {
            2 => {
                ctx.out.array(CATEGORIES.len());
                for category in CATEGORIES {
                    ctx.out.bulk(category.as_bytes());
                }
            }
            3 => {
                let category = String::from_utf8_lossy(args.get(2));
                let members = crate::acl::category_members(&category).map_err(Error::from)?;
                ctx.out.array(members.len());
                for name in members {
                    ctx.out.bulk(name.as_bytes());
                }
            }
            _ => return Err(subcommand_arity("acl", sub)),
        },
        b"HELP" => {
            arity(n == 2)?;
            help(&mut ctx.out, ACL_HELP);
        }
        _ => return Err(unknown_subcommand(sub, "acl")),
    }
    Ok(())
}
