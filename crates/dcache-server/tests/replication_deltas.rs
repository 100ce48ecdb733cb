//! Deltas: a write to a large hash, set or sorted set sends its copies only the elements it
//! changed, under every strategy; a copy that cannot apply one gets the key's whole state in its
//! place, and acknowledgements keep their meaning (the copies hold every acknowledged write,
//! through a failover too).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::members::{enabled, replicated};
use common::{TestNode, patient, query};
use dcache_cluster::{Change, Settings, Strategy, Topology};
use dcache_server::cluster::LocalControl;

fn topology(control: &LocalControl) -> Arc<Topology> {
    Arc::clone(&control.subscribe().borrow())
}

/// The nodes holding `key`'s slot, in order (the primary first).
fn copies<'a>(control: &LocalControl, nodes: &'a [TestNode], key: &str) -> Vec<&'a TestNode> {
    let t = topology(control);
    let slot = dcache_placement::slot(key.as_bytes());
    t.replicas_of(slot)
        .iter()
        .map(|m| {
            nodes
                .iter()
                .find(|n| n.shared.cluster.as_ref().unwrap().view().me == m.id)
                .expect("a live node")
        })
        .collect()
}

fn strategies() -> [Settings; 3] {
    [
        Settings::new(1, Strategy::Primary),
        Settings::new(1, Strategy::Chain),
        Settings::new(2, Strategy::Quorum),
    ]
}

/// A counter of `INFO replication`.
async fn counter(con: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = query(con, &["INFO", "replication"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

/// `key`'s value on `node`, read from its store.
fn value_on(node: &TestNode, key: &str) -> Option<dcache_store::OwnedValue> {
    let now = node.shared.clock.now_ms();
    match node.shared.store.effect_of(key.as_bytes(), now).change {
        dcache_store::Change::Put { value, .. } => Some(value),
        _ => None,
    }
}

/// The command that loads `n` elements into `key` of `kind`, and the one that writes one more.
fn load(kind: &str, key: &str, n: usize) -> Vec<String> {
    let mut args: Vec<String> = match kind {
        "zset" => vec!["ZADD".into(), key.into()],
        "hash" => vec!["HSET".into(), key.into()],
        _ => vec!["SADD".into(), key.into()],
    };
    for i in 0..n {
        match kind {
            "zset" => args.extend([i.to_string(), format!("member:{i}")]),
            "hash" => args.extend([format!("field:{i}"), format!("value:{i}")]),
            _ => args.push(format!("member:{i}")),
        }
    }
    args
}

fn one(kind: &str, key: &str, i: usize) -> Vec<String> {
    match kind {
        "zset" => vec!["ZADD".into(), key.into(), "0.5".into(), format!("new:{i}")],
        "hash" => vec![
            "HSET".into(),
            key.into(),
            format!("field:{i}"),
            "changed".into(),
        ],
        // A removal every other write.
        _ if i % 2 == 1 => vec!["SREM".into(), key.into(), format!("member:{i}")],
        _ => vec!["SADD".into(), key.into(), format!("new:{i}")],
    }
}

async fn run(con: &mut redis::aio::MultiplexedConnection, args: &[String]) -> redis::Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    query(con, &args).await
}

/// Waits until every copy of `key` holds the writes made at `primary` (WAIT for its peers).
async fn wait_for_copies(con: &mut redis::aio::MultiplexedConnection, peers: usize) {
    let reached: i64 = query(con, &["WAIT", &peers.to_string(), "10000"]).await;
    assert_eq!(reached, peers as i64);
}

/// Under `primary` and `quorum`, 100 one-element writes to a 10,000-element key send about
/// their own size each, not the key's (which is about 170 KB); a chain sends whole states; under
/// every strategy every copy ends with the primary's contents.
#[tokio::test]
async fn writes_to_large_keys_send_deltas_and_every_copy_agrees() {
    for settings in strategies() {
        let strategy = settings.strategy;
        let (control, nodes) = replicated(3, settings, enabled()).await;
        for kind in ["zset", "hash", "set"] {
            let key = format!("{{big}}:{kind}");
            let holders = copies(&control, &nodes, &key);
            let mut con = patient(holders[0]).await;
            run(&mut con, &load(kind, &key, 10_000)).await;
            let bytes = counter(&mut con, "replication_effect_bytes").await;
            let deltas = counter(&mut con, "replication_delta_effects").await;
            for i in 0..100 {
                run(&mut con, &one(kind, &key, i)).await;
            }
            let sent = counter(&mut con, "replication_effect_bytes").await - bytes;
            let sent_deltas = counter(&mut con, "replication_delta_effects").await - deltas;
            if strategy == Strategy::Chain {
                // A chain sends whole states (see `replicate::follow_deltas`).
                assert_eq!(sent_deltas, 0, "{strategy:?} {kind}");
                assert!(
                    sent > 100 * 10_000,
                    "{strategy:?} {kind}: {sent} bytes sent"
                );
            } else {
                assert!(sent < 100 * 256, "{strategy:?} {kind}: {sent} bytes sent");
                assert_eq!(sent_deltas, 100, "{strategy:?} {kind}");
            }
            wait_for_copies(&mut con, holders.len() - 1).await;
            let want = value_on(holders[0], &key).expect("on the primary");
            for copy in &holders[1..] {
                assert!(
                    value_on(copy, &key) == Some(want.clone()),
                    "{strategy:?} {kind}: a copy differs"
                );
            }
        }
    }
}

/// A copy that lost a key (here: dropped from its store behind replication's back) cannot apply
/// the next delta: it answers STALE, gets the key's whole state in its place, and the write is
/// acknowledged only then.
#[tokio::test]
async fn a_copy_that_missed_a_delta_gets_the_whole_key() {
    // (A chain sends whole states: nothing there is ever stale.)
    for settings in [Settings::new(1, Strategy::Primary)] {
        let strategy = settings.strategy;
        let (control, nodes) = replicated(2, settings, enabled()).await;
        let key = "{lost}:zset";
        let holders = copies(&control, &nodes, key);
        let mut con = patient(holders[0]).await;
        run(&mut con, &load("zset", key, 1_000)).await;
        run(&mut con, &one("zset", key, 0)).await;
        // The replica forgets the key without a tombstone: a delta then finds nothing to apply
        // to.
        let replica = &holders[1].shared.store;
        let life = replica.settings().tombstone_ms;
        replica.set_tombstone_ms(0);
        let k = replica.key(key.as_bytes());
        let now = holders[1].shared.clock.now_ms();
        assert!(replica.lock(&k).remove(&k, now).is_some());
        replica.set_tombstone_ms(life);
        let stale = counter(&mut con, "replication_stale_resends").await;
        run(&mut con, &one("zset", key, 1)).await;
        // Acknowledged: the replica (the one synchronous copy, or the tail) holds it.
        let want = value_on(holders[0], key).expect("on the primary");
        assert!(
            value_on(holders[1], key) == Some(want),
            "{strategy:?}: the replica was not given the whole key"
        );
        assert_eq!(
            counter(&mut con, "replication_stale_resends").await - stale,
            1,
            "{strategy:?}"
        );
    }
}

/// The primary of a 10,000-member sorted set dies while one-member ZADDs stream in: every
/// member whose ZADD was acknowledged is on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_primary_under_large_writes_keeps_every_acknowledged_member() {
    for settings in strategies() {
        let strategy = settings.strategy;
        let (control, mut nodes) = replicated(3, settings, enabled()).await;
        let key = "{fail}:zset";
        let primary = copies(&control, &nodes, key)[0].addr;
        let at = nodes.iter().position(|n| n.addr == primary).unwrap();
        let mut con = patient(&nodes[at]).await;
        run(&mut con, &load("zset", key, 10_000)).await;
        let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            for i in 0..400 {
                let args = one("zset", key, i);
                let write = run_checked(&mut con, &args);
                match tokio::time::timeout(Duration::from_secs(5), write).await {
                    Ok(Ok(_)) => {
                        let _ = acked_tx.send(i);
                    }
                    _ => return,
                }
            }
        });
        let mut acked = Vec::new();
        while acked.len() < 50 {
            acked.push(
                acked_rx
                    .recv()
                    .await
                    .expect("the writer acknowledges 50 writes"),
            );
        }
        // The primary dies mid-stream; the cluster declares it failed.
        let dead = nodes.remove(at);
        let dead_id = dead.shared.cluster.as_ref().unwrap().view().me.clone();
        drop(dead);
        control.apply(&Change::Fail(dead_id)).unwrap();
        writer.await.unwrap();
        while let Ok(i) = acked_rx.try_recv() {
            acked.push(i);
        }
        assert!(topology(&control).all_served());
        // Read through the cluster (under quorum a read asks the copies and answers the
        // newest).
        let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
        let mut con = client.get_async_connection().await.unwrap();
        let added: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg("0.5")
            .arg("0.5")
            .query_async(&mut con)
            .await
            .unwrap();
        for i in acked {
            assert!(
                added.contains(&format!("new:{i}")),
                "{strategy:?}: new:{i} was acknowledged and lost"
            );
        }
        let len: usize = redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(len, 10_000 + added.len(), "{strategy:?}");
    }
}

async fn run_checked(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[String],
) -> redis::RedisResult<redis::Value> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::cmd(con, &args).await
}

/// `replication-deltas no` sends every write whole again; `yes` brings deltas back. CONFIG
/// GET shows the setting, and a value other than yes or no is refused.
#[tokio::test]
async fn replication_deltas_is_a_node_setting() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), enabled()).await;
    let key = "{switch}:zset";
    let holders = copies(&control, &nodes, key);
    let mut con = patient(holders[0]).await;
    run(&mut con, &load("zset", key, 1_000)).await;
    let got: Vec<String> = query(&mut con, &["CONFIG", "GET", "replication-deltas"]).await;
    assert_eq!(got, ["replication-deltas", "yes"]);
    let error =
        common::error_text(&mut con, &["CONFIG", "SET", "replication-deltas", "maybe"]).await;
    assert_eq!(
        error,
        "ERR CONFIG SET failed (possibly related to argument 'replication-deltas') - argument \
         must be 'yes' or 'no'"
    );
    for (setting, delta) in [("no", 0), ("yes", 1)] {
        let _: String = query(&mut con, &["CONFIG", "SET", "replication-deltas", setting]).await;
        let before = counter(&mut con, "replication_delta_effects").await;
        run(&mut con, &one("zset", key, 0)).await;
        run(&mut con, &one("zset", key, 1)).await;
        assert_eq!(
            counter(&mut con, "replication_delta_effects").await - before,
            2 * delta,
            "replication-deltas {setting}"
        );
    }
    let want = value_on(holders[0], key);
    assert!(want.is_some() && value_on(holders[1], key) == want);
}

/// Under `quorum`, two copies coordinate writes to one large sorted set at once: their deltas
/// cross (each copy's base is the other's stale one), the copies that cannot apply one are
/// sent the whole key, and every copy ends with the same value (the newest, as without deltas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quorum_coordinators_writing_one_large_key_leave_equal_copies() {
    let (control, nodes) = replicated(3, Settings::new(2, Strategy::Quorum), enabled()).await;
    let key = "{both}:zset";
    let holders = copies(&control, &nodes, key);
    let mut first = patient(holders[0]).await;
    run(&mut first, &load("zset", key, 10_000)).await;
    wait_for_copies(&mut first, 2).await;
    let mut second = patient(holders[1]).await;
    let write = async |con: &mut redis::aio::MultiplexedConnection, tag: &str| {
        for i in 0..50 {
            let args = [
                "ZADD".to_string(),
                key.into(),
                "0.5".into(),
                format!("{tag}:{i}"),
            ];
            run(con, &args).await;
        }
    };
    tokio::join!(write(&mut first, "a"), write(&mut second, "b"));
    wait_for_copies(&mut first, 2).await;
    wait_for_copies(&mut second, 2).await;
    let values: Vec<_> = holders.iter().map(|n| value_on(n, key)).collect();
    assert!(values[0].is_some());
    assert!(
        values.iter().all(|v| *v == values[0]),
        "the copies differ after both coordinators' writes"
    );
}

/// Every command that changes a large hash, set or sorted set, on a replicated key: each
/// write's delta (checked in debug builds against the value it must rebuild, by the store) and
/// the copies' values agree.
#[tokio::test]
async fn every_write_command_of_a_large_aggregate_replicates_exactly() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), enabled()).await;
    let (hash, set, other, zset, geo) = (
        "{all}:hash",
        "{all}:set",
        "{all}:other",
        "{all}:zset",
        "{all}:geo",
    );
    let holders = copies(&control, &nodes, hash);
    let mut con = patient(holders[0]).await;
    run(&mut con, &load("hash", hash, 1_000)).await;
    run(&mut con, &load("set", set, 1_000)).await;
    run(&mut con, &load("set", other, 1_000)).await;
    run(&mut con, &load("zset", zset, 1_000)).await;
    let mut geoadd = vec!["GEOADD".to_string(), geo.into()];
    for i in 0..300 {
        let (lon, lat) = (-170.0 + f64::from(i) * 0.9, -60.0 + f64::from(i) * 0.3);
        geoadd.extend([lon.to_string(), lat.to_string(), format!("place:{i}")]);
    }
    run(&mut con, &geoadd).await;
    let deltas = counter(&mut con, "replication_delta_effects").await;
    let writes: &[&[&str]] = &[
        &["HSET", hash, "field:1", "x", "fresh", "y"],
        &["HDEL", hash, "field:2", "field:3", "absent"],
        &["HINCRBY", hash, "count", "5"],
        &["HINCRBYFLOAT", hash, "float", "1.5"],
        &["HSETNX", hash, "field:4", "ignored"],
        &["HSETNX", hash, "new-nx", "kept"],
        &["HMSET", hash, "field:5", "a", "field:6", "b"],
        &["SADD", set, "member:1", "brand-new"],
        &["SREM", set, "member:2", "absent"],
        &["SPOP", set, "3"],
        &["SMOVE", set, other, "member:10"],
        &["ZADD", zset, "GT", "5000", "member:1", "1", "member:2"],
        &["ZADD", zset, "LT", "-1", "member:3"],
        &["ZADD", zset, "NX", "7", "member:4", "7", "nx-new"],
        &["ZADD", zset, "XX", "CH", "9", "member:5", "9", "xx-absent"],
        &["ZINCRBY", zset, "2.5", "member:6"],
        &["ZREM", zset, "member:7", "absent"],
        &["ZPOPMIN", zset, "2"],
        &["ZPOPMAX", zset],
        &["ZREMRANGEBYSCORE", zset, "100", "110"],
        &["ZREMRANGEBYRANK", zset, "0", "3"],
        &["ZREMRANGEBYLEX", zset, "[member:50", "[member:52"],
        &[
            "GEOADD",
            geo,
            "10",
            "20",
            "place:1",
            "11",
            "21",
            "place:new",
        ],
    ];
    for write in writes {
        let _: redis::Value = query(&mut con, write).await;
    }
    // One delta a write, and SMOVE's two keys one each.
    assert_eq!(
        counter(&mut con, "replication_delta_effects").await - deltas,
        writes.len() as u64 + 1,
    );
    wait_for_copies(&mut con, 1).await;
    for key in [hash, set, other, zset, geo] {
        let want = value_on(holders[0], key);
        assert!(want.is_some(), "{key}");
        assert!(
            value_on(holders[1], key) == want,
            "{key} differs on the replica"
        );
    }
}
