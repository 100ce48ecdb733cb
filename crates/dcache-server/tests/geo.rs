//! Geo commands through the `redis` crate: semantics, errors, replication to a replica, and
//! the same replies as a real `redis-server` for the same seeded positions and searches.

mod common;
mod fuzz;

use std::sync::Arc;

use common::members::{enabled, replicated};
use common::{TestNode, error_text as err, node_and_client, query as q};
use dcache_cluster::{Settings, Strategy};
use fuzz::Rng;
use fuzz::differential::RedisServer;
use redis::Value;
use redis::aio::MultiplexedConnection;

/// Palermo and Catania, as in Redis's documentation.
async fn sicily(c: &mut MultiplexedConnection) {
    let added: i64 = q(
        c,
        &[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
    )
    .await;
    assert_eq!(added, 2);
}

/// A member's score, as WITHHASH gives it (sorted set commands are not this file's).
async fn score(c: &mut MultiplexedConnection, key: &str, member: &str) -> i64 {
    let found: Vec<(String, i64)> = q(
        c,
        &[
            "GEOSEARCH",
            key,
            "FROMMEMBER",
            member,
            "BYRADIUS",
            "0",
            "m",
            "WITHHASH",
        ],
    )
    .await;
    found
        .into_iter()
        .find(|(m, _)| m == member)
        .map(|(_, s)| s)
        .expect("the member finds itself")
}

#[tokio::test]
async fn geoadd_stores_scores_and_geopos_geodist_geohash_read_them() {
    let (_node, mut c) = node_and_client().await;
    sicily(&mut c).await;
    assert_eq!(q::<String>(&mut c, &["TYPE", "Sicily"]).await, "zset");
    assert_eq!(
        q::<Vec<Option<(String, String)>>>(&mut c, &["GEOPOS", "Sicily", "Palermo", "nowhere"])
            .await,
        [
            Some((
                "13.36138933897018433".to_owned(),
                "38.11555639549629859".to_owned()
            )),
            None
        ]
    );
    assert_eq!(
        q::<String>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania"]).await,
        "166274.1516"
    );
    assert_eq!(
        q::<String>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]).await,
        "166.2742"
    );
    assert_eq!(
        q::<String>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "MI"]).await,
        "103.3182"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GEODIST", "Sicily", "Palermo", "nowhere"]).await,
        None
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["GEOHASH", "Sicily", "Palermo", "Catania", "x"]).await,
        [
            Some("sqc8b49rny0".to_owned()),
            Some("sqdtr74hyu0".to_owned()),
            None
        ]
    );
    // The score is the 52-bit geohash.
    assert_eq!(score(&mut c, "Sicily", "Palermo").await, 3479099956230698);
}

#[tokio::test]
async fn geoadd_options_follow_zadd() {
    let (_node, mut c) = node_and_client().await;
    sicily(&mut c).await;
    // XX updates only, NX adds only, CH counts changes.
    let args = [
        "GEOADD", "Sicily", "XX", "CH", "13", "38", "Palermo", "1", "1", "New",
    ];
    assert_eq!(q::<i64>(&mut c, &args).await, 1);
    let new: Vec<Option<(f64, f64)>> = q(&mut c, &["GEOPOS", "Sicily", "New"]).await;
    assert_eq!(new, [None]);
    let args = [
        "GEOADD", "Sicily", "NX", "14", "38", "Palermo", "1", "1", "New",
    ];
    assert_eq!(q::<i64>(&mut c, &args).await, 1);
    let pos: Vec<Option<(f64, f64)>> = q(&mut c, &["GEOPOS", "Sicily", "Palermo"]).await;
    let (lon, lat) = pos[0].unwrap();
    assert!((lon - 13.0).abs() < 1e-5 && (lat - 38.0).abs() < 1e-5);
    // Without CH, an update is not counted.
    assert_eq!(
        q::<i64>(&mut c, &["GEOADD", "Sicily", "2", "2", "New"]).await,
        0
    );
    // XX on a missing key creates nothing.
    assert_eq!(
        q::<i64>(&mut c, &["GEOADD", "none", "XX", "1", "1", "a"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "none"]).await, 0);
}

#[tokio::test]
async fn errors_follow_redis() {
    let (_node, mut c) = node_and_client().await;
    q::<String>(&mut c, &["SET", "text", "v"]).await;
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "200", "10", "m"]).await,
        "ERR invalid longitude,latitude pair 200.000000,10.000000"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "10", "86", "m"]).await,
        "ERR invalid longitude,latitude pair 10.000000,86.000000"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "x", "10", "m"]).await,
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "NX", "XX", "1", "1", "m"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "1", "1", "m", "2"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "CH", "CH", "CH"]).await,
        "ERR syntax error"
    );
    // Coordinates are checked before the key's type.
    assert_eq!(
        err(&mut c, &["GEOADD", "text", "1", "1", "m"]).await,
        wrongtype
    );
    assert_eq!(err(&mut c, &["GEOPOS", "text", "m"]).await, wrongtype);
    assert_eq!(
        err(&mut c, &["GEODIST", "text", "a", "b", "parsec"]).await,
        "ERR unsupported unit provided. please use M, KM, FT, MI"
    );
    assert_eq!(
        err(&mut c, &["GEODIST", "k", "a", "b", "m", "x"]).await,
        "ERR syntax error"
    );
    sicily(&mut c).await;
    let search = |rest: &[&'static str]| {
        let mut args = vec!["GEOSEARCH", "Sicily"];
        args.extend_from_slice(rest);
        args
    };
    for (args, expected) in [
        (
            search(&["BYRADIUS", "10", "km", "ASC", "DESC"]),
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "ASC", "DESC", "ASC"]),
            "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH",
        ),
        (
            search(&["FROMMEMBER", "nowhere", "BYRADIUS", "10", "km"]),
            "ERR could not decode requested zset member",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYRADIUS", "-1", "km"]),
            "ERR radius cannot be negative",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYRADIUS", "far", "km"]),
            "ERR need numeric radius",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYBOX", "1", "-1", "km"]),
            "ERR height or width cannot be negative",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYRADIUS", "1", "km", "COUNT", "0"]),
            "ERR COUNT must be > 0",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYRADIUS", "1", "km", "ANY"]),
            "ERR the ANY argument requires COUNT argument",
        ),
        (
            search(&["FROMMEMBER", "Palermo", "BYRADIUS", "1", "km", "STOREDIST"]),
            "ERR syntax error",
        ),
        (
            search(&[
                "FROMLONLAT",
                "1",
                "1",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "1",
                "m",
            ]),
            "ERR syntax error",
        ),
    ] {
        assert_eq!(err(&mut c, &args).await, expected, "{args:?}");
    }
    assert_eq!(
        err(
            &mut c,
            &[
                "GEOSEARCHSTORE",
                "d",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "1",
                "km",
                "WITHDIST"
            ]
        )
        .await,
        "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
    );
    // A missing source: an empty reply, after the arguments are checked.
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["GEOSEARCH", "none", "FROMMEMBER", "x", "BYRADIUS", "1", "m"]
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        err(
            &mut c,
            &["GEOSEARCH", "text", "FROMMEMBER", "x", "BYRADIUS", "1", "m"]
        )
        .await,
        wrongtype
    );
}

#[tokio::test]
async fn geosearch_finds_sorts_counts_and_stores() {
    let (_node, mut c) = node_and_client().await;
    sicily(&mut c).await;
    q::<i64>(
        &mut c,
        &[
            "GEOADD",
            "Sicily",
            "12.758489",
            "38.788135",
            "edge1",
            "17.241510",
            "38.788135",
            "edge2",
        ],
    )
    .await;
    let near: Vec<String> = q(
        &mut c,
        &[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "ASC",
        ],
    )
    .await;
    assert_eq!(near, ["Catania", "Palermo"]);
    let far_first: Vec<String> = q(
        &mut c,
        &[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYBOX",
            "400",
            "400",
            "km",
            "DESC",
        ],
    )
    .await;
    // edge1 is 279.7403 km away, edge2 279.7405 km (Redis's documentation).
    assert_eq!(far_first, ["edge1", "edge2", "Palermo", "Catania"]);
    let closest: Vec<String> = q(
        &mut c,
        &[
            "GEOSEARCH",
            "Sicily",
            "FROMMEMBER",
            "Palermo",
            "BYRADIUS",
            "500",
            "km",
            "COUNT",
            "2",
        ],
    )
    .await;
    assert_eq!(closest, ["Palermo", "edge1"]);
    let detailed: Value = q(
        &mut c,
        &[
            "GEOSEARCH",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "100",
            "km",
            "WITHDIST",
            "WITHHASH",
            "WITHCOORD",
        ],
    )
    .await;
    assert_eq!(
        detailed,
        Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"Catania".to_vec()),
            Value::BulkString(b"56.4413".to_vec()),
            Value::Int(3479447370796909),
            Value::Array(vec![
                Value::BulkString(b"15.08726745843887329".to_vec()),
                Value::BulkString(b"37.50266842333162032".to_vec()),
            ]),
        ])])
    );
    // GEORADIUS_RO and GEORADIUSBYMEMBER_RO are the same search.
    let ro: Vec<String> = q(
        &mut c,
        &["GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "ASC"],
    )
    .await;
    assert_eq!(ro, near);
    let ro: Vec<String> = q(
        &mut c,
        &[
            "GEORADIUSBYMEMBER_RO",
            "Sicily",
            "Palermo",
            "500",
            "km",
            "COUNT",
            "2",
        ],
    )
    .await;
    assert_eq!(ro, closest);

    let stored: i64 = q(
        &mut c,
        &[
            "GEOSEARCHSTORE",
            "dest",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
        ],
    )
    .await;
    assert_eq!(stored, 2);
    assert_eq!(
        score(&mut c, "dest", "Palermo").await,
        score(&mut c, "Sicily", "Palermo").await
    );
    let stored: i64 = q(
        &mut c,
        &[
            "GEOSEARCHSTORE",
            "dist",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "STOREDIST",
        ],
    )
    .await;
    assert_eq!(stored, 2);
    // The distance, 56.4413 km, as the score (WITHHASH shows its integer part).
    assert_eq!(score(&mut c, "dist", "Catania").await, 56);
    // Nothing found: the destination is deleted.
    q::<String>(&mut c, &["SET", "gone", "x"]).await;
    let stored: i64 = q(
        &mut c,
        &[
            "GEOSEARCHSTORE",
            "gone",
            "Sicily",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ],
    )
    .await;
    assert_eq!(stored, 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "gone"]).await, 0);
}

/// The node that holds `key`'s slot at `position` of its copies (0: the primary).
fn holder<'a>(
    control: &dcache_server::cluster::LocalControl,
    nodes: &'a [TestNode],
    key: &str,
    position: usize,
) -> &'a TestNode {
    let topology = Arc::clone(&control.subscribe().borrow());
    let slot = dcache_placement::slot(key.as_bytes());
    let id = &topology.replicas_of(slot)[position].id;
    nodes
        .iter()
        .find(|n| n.shared.cluster.as_ref().unwrap().view().me == *id)
        .expect("a live node")
}

/// A GEOADD acknowledged by the primary (with a synchronous replica) reads back at the replica.
#[tokio::test]
async fn a_geoadd_at_the_primary_is_read_at_the_replica() {
    let (control, nodes) = replicated(2, Settings::new(1, Strategy::Primary), enabled()).await;
    let key = "Sicily";
    let mut primary = holder(&control, &nodes, key, 0).client().await;
    sicily(&mut primary).await;
    let at_primary: Value = q(&mut primary, &["GEOPOS", key, "Palermo", "Catania"]).await;
    let mut replica = holder(&control, &nodes, key, 1).client().await;
    assert_eq!(q::<String>(&mut replica, &["READONLY"]).await, "OK");
    let at_replica: Value = q(&mut replica, &["GEOPOS", key, "Palermo", "Catania"]).await;
    assert_eq!(at_replica, at_primary);
    assert_eq!(
        q::<String>(&mut replica, &["GEODIST", key, "Palermo", "Catania"]).await,
        "166274.1516"
    );
}

fn redis_installed() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_same_positions_and_searches_give_redis_s_replies() {
    if !redis_installed() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must install redis-server (apt-get install -y redis-server)"
        );
        fuzz::say("geo comparison skipped: redis-server is not installed");
        return;
    }
    let redis = RedisServer::start().expect("redis-server starts");
    let client = redis::Client::open(format!("redis://{}/", redis.addr)).unwrap();
    let mut theirs = client.get_multiplexed_async_connection().await.unwrap();
    let (_node, mut ours) = node_and_client().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    fuzz::say(&format!("geo comparison: seed {seed}"));
    let mut rng = Rng::new(seed);
    let coord = |rng: &mut Rng, span: f64| (rng.below(2_000_001) as f64 / 1_000_000.0 - 1.0) * span;
    let mut sent = Vec::new();
    // Clusters of points around a few centres, one near the antimeridian and one far north.
    let centres = [(13.0, 38.0), (179.5, -10.0), (-70.0, 80.0), (0.0, 0.0)];
    for (i, &(lon, lat)) in centres.iter().enumerate() {
        let mut add = vec!["GEOADD".to_owned(), "g".to_owned()];
        for j in 0..150 {
            let x = (lon + coord(&mut rng, 3.0)).clamp(-180.0, 180.0);
            let y = (lat + coord(&mut rng, 3.0)).clamp(-85.0, 85.0);
            add.extend([format!("{x:.6}"), format!("{y:.6}"), format!("m{i}-{j}")]);
        }
        sent.push(add);
    }
    for _ in 0..300 {
        let (lon, lat) = *rng.pick(&centres);
        let from = if rng.below(2) == 0 {
            vec![
                "FROMMEMBER".to_owned(),
                format!("m{}-{}", rng.below(centres.len()), rng.below(150)),
            ]
        } else {
            vec![
                "FROMLONLAT".to_owned(),
                format!("{:.6}", (lon + coord(&mut rng, 2.0)).clamp(-180.0, 180.0)),
                format!("{:.6}", (lat + coord(&mut rng, 2.0)).clamp(-85.0, 85.0)),
            ]
        };
        let unit = rng.pick(&["m", "km", "ft", "mi"]).to_string();
        let size = |rng: &mut Rng| format!("{}", rng.below(400_000) as f64 / 100.0);
        let by = if rng.below(2) == 0 {
            vec!["BYRADIUS".to_owned(), size(&mut rng), unit]
        } else {
            vec!["BYBOX".to_owned(), size(&mut rng), size(&mut rng), unit]
        };
        let mut search = vec!["GEOSEARCH".to_owned(), "g".to_owned()];
        search.extend(from);
        search.extend(by);
        for option in ["WITHDIST", "WITHHASH", "WITHCOORD", "ASC", "DESC"] {
            if rng.below(3) == 0 {
                search.push(option.to_owned());
            }
        }
        if rng.below(3) == 0 {
            search.extend(["COUNT".to_owned(), format!("{}", 1 + rng.below(20))]);
            if rng.below(2) == 0 {
                search.push("ANY".to_owned());
            }
        }
        sent.push(search);
        let a = format!("m0-{}", rng.below(150));
        let b = format!("m{}-{}", rng.below(centres.len()), rng.below(150));
        let unit = rng.pick(&["m", "km", "ft", "mi"]).to_string();
        sent.push(vec![
            "GEODIST".into(),
            "g".into(),
            a.clone(),
            b.clone(),
            unit,
        ]);
        sent.push(vec![
            "GEOPOS".into(),
            "g".into(),
            a.clone(),
            b.clone(),
            "none".into(),
        ]);
        sent.push(vec!["GEOHASH".into(), "g".into(), a, b]);
    }
    for request in &sent {
        let mut cmd = redis::cmd(&request[0]);
        for arg in &request[1..] {
            cmd.arg(arg);
        }
        let a: redis::RedisResult<Value> = cmd.query_async(&mut ours).await;
        let b: redis::RedisResult<Value> = cmd.query_async(&mut theirs).await;
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "seed {seed}: {request:?}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "seed {seed}: {request:?}")
            }
            (a, b) => panic!("seed {seed}: {request:?}: dcache {a:?}, redis {b:?}"),
        }
    }
}

/// GEOADD and GEOSEARCHSTORE build their sets under `zset-max-listpack-*`, as ZADD does.
#[tokio::test]
async fn geo_sets_change_form_at_the_configured_limits() {
    let (_node, mut c) = node_and_client().await;
    let ok: String = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-entries", "1"]).await;
    assert_eq!(ok, "OK");
    sicily(&mut c).await;
    let stored: i64 = q(
        &mut c,
        &[
            "GEOSEARCHSTORE",
            "near",
            "Sicily",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "500",
            "km",
            "ASC",
        ],
    )
    .await;
    assert_eq!(stored, 2);
    for key in ["Sicily", "near"] {
        let encoding: String = q(&mut c, &["OBJECT", "ENCODING", key]).await;
        assert_eq!(encoding, "skiplist", "{key}");
    }
    let ok: String = q(
        &mut c,
        &["CONFIG", "SET", "zset-max-listpack-entries", "1000"],
    )
    .await;
    assert_eq!(ok, "OK");
    for i in 0..200 {
        let lon = format!("{}", f64::from(i) / 10.0);
        let _: i64 = q(&mut c, &["GEOADD", "many", &lon, "10", &format!("p{i}")]).await;
    }
    let encoding: String = q(&mut c, &["OBJECT", "ENCODING", "many"]).await;
    assert_eq!(encoding, "listpack");
}
