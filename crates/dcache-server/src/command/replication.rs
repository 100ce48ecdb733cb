//! ROLE and WAIT: replication as Redis's tools ask about it (`crate::replicate` does the work).

use std::time::Duration;

use dcache_protocol::Args;

use super::{CmdResult, Ctx, Error, int_arg};

/// `ROLE`: every node is a master (it is the primary of some slots, a replica of others):
/// `["master", offset, [[host, port, acknowledged offset], …]]`, one entry per peer it streams
/// writes to. Offsets count items, not bytes.
pub fn role(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let Some(cluster) = &ctx.shared.cluster else {
        ctx.out.array(3);
        ctx.out.bulk(b"master");
        ctx.out.int(0);
        ctx.out.array(0);
        return Ok(());
    };
    let view = cluster.view();
    let streams = cluster.replication.streams();
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(streams.iter().map(|s| s.1).sum::<u64>() as i64);
    ctx.out.array(streams.len());
    for (peer, _, acked) in &streams {
        let (host, port) = view
            .topology
            .nodes
            .get(peer)
            .map_or((String::new(), 0), |n| (n.host.clone(), n.port));
        ctx.out.array(3);
        ctx.out.bulk(host.as_bytes());
        ctx.out.bulk(port.to_string().as_bytes());
        ctx.out.bulk(acked.to_string().as_bytes());
    }
    Ok(())
}

/// `WAIT numreplicas timeout`: waits until `numreplicas` of the peers this connection's writes
/// went to acknowledged them all, or until `timeout` milliseconds (0: no limit); answers how many
/// did. A connection that wrote nothing gets the number of peers this node streams to at once
/// (as Redis answers the number of its replicas). The reply is held like a replicated write's, so
/// the connection's other replies keep their order and no thread waits.
pub fn wait(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // Redis reads the timeout first.
    let timeout = dcache_protocol::request::parse_i64(args.get(2))
        .ok_or(Error::from("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(Error::from("ERR timeout is negative"));
    }
    let wanted = int_arg(args.get(1))?;
    let Some(cluster) = ctx.shared.cluster.clone() else {
        ctx.out.int(0);
        return Ok(());
    };
    let marks = ctx.conn.marks.clone();
    if marks.is_empty() {
        ctx.out.int(cluster.replication.streams().len() as i64);
        return Ok(());
    }
    let reached = cluster.replication.reached(&marks);
    if reached as i64 >= wanted {
        ctx.out.int(reached as i64);
        return Ok(());
    }
    let ack = crate::replicate::Ack::default();
    let done = ack.clone();
    let deadline =
        (timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(timeout as u64));
    tokio::spawn(async move {
        let replication = &cluster.replication;
        loop {
            let progress = replication.progress.notified();
            let reached = replication.reached(&marks);
            if reached as i64 >= wanted {
                done.complete_int(reached as i64);
                return;
            }
            match deadline {
                Some(at) => {
                    if tokio::time::timeout_at(at, progress).await.is_err() {
                        done.complete_int(replication.reached(&marks) as i64);
                        return;
                    }
                }
                None => progress.await,
            }
        }
    });
    // A placeholder the held reply replaces with the count.
    ctx.out.int(0);
    ctx.conn.hold = Some(ack);
    Ok(())
}
