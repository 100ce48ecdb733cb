//! CLUSTER: for now the stateless part, KEYSLOT, computed by `dcache-placement` exactly as Redis
//! Cluster does. The rest arrives with the cluster protocol.

use dcache_protocol::Args;

use super::{CmdResult, Ctx, help, subcommand_arity, unknown_subcommand};

pub fn cluster(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    match sub.to_ascii_uppercase().as_slice() {
        b"KEYSLOT" => {
            if args.len() != 3 {
                return Err(subcommand_arity("cluster", sub));
            }
            ctx.out.int(i64::from(dcache_placement::slot(args.get(2))));
        }
        b"HELP" => help(
            &mut ctx.out,
            &[
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
            ],
        ),
        b"INFO" | b"SLOTS" | b"SHARDS" | b"NODES" | b"MYID" => {
            return Err("ERR This instance has cluster support disabled".into());
        }
        _ => return Err(unknown_subcommand(sub, "cluster")),
    }
    Ok(())
}
