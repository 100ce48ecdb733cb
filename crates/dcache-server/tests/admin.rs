//! The admin HTTP listener: `/health` and Prometheus `/metrics`, read with a plain HTTP/1.1
//! request over loopback.

mod common;

use common::{start, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    http_get_with(addr, path, None).await
}

/// The value of the first sample line that starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn health_and_metrics_reflect_the_node() {
    let node = start(test_config()).await;
    let admin = node.admin.expect("the test node has an admin listener");
    let (head, body) = http_get(admin, "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.trim(), "ok");

    let mut c = node.client().await;
    for i in 0..5 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: Option<String> = redis::cmd("GET")
        .arg("k1")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: Option<String> = redis::cmd("GET")
        .arg("missing")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::RedisResult<()> = redis::cmd("INCR").arg("k1").query_async(&mut c).await;

    let (head, metrics) = http_get(admin, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        sample(&metrics, "dcache_commands_total{command=\"set\"}"),
        5.0
    );
    assert_eq!(
        sample(&metrics, "dcache_commands_total{command=\"get\"}"),
        2.0
    );
    assert_eq!(
        sample(&metrics, "dcache_command_errors_total{command=\"incr\"}"),
        1.0
    );
    assert_eq!(sample(&metrics, "dcache_keyspace_hits_total"), 1.0);
    assert_eq!(sample(&metrics, "dcache_keyspace_misses_total"), 1.0);
    assert_eq!(sample(&metrics, "dcache_keys"), 5.0);
    assert_eq!(sample(&metrics, "dcache_connections"), 1.0);
    assert!(sample(&metrics, "dcache_memory_used_bytes") > 0.0);
    // Every executed command is timed once (the client's own hand-shake commands included).
    let executed: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("dcache_commands_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(executed >= 8.0);
    assert_eq!(
        sample(&metrics, "dcache_command_duration_seconds_count"),
        executed
    );
    assert_eq!(
        sample(
            &metrics,
            "dcache_command_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        executed
    );
    // Buckets are cumulative: never decreasing, ending at the count.
    let buckets: Vec<f64> = metrics
        .lines()
        .filter(|l| l.starts_with("dcache_command_duration_seconds_bucket{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 22);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    for name in [
        "dcache_evicted_keys_total",
        "dcache_expired_keys_total",
        "dcache_net_input_bytes_total",
    ] {
        sample(&metrics, name);
    }
    // Every metric the node declares is exported.
    for (name, _, _) in dcache_server::metrics::METRICS {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} missing"
        );
    }

    let (head, _) = http_get(admin, "/nope").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

async fn http_get_with(
    addr: std::net::SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let header = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the admin listener answers")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn with_a_password_admin_http_wants_the_bearer_token() {
    let mut config = test_config();
    config.requirepass = "s3cret".into();
    let node = start(config).await;
    let admin = node.admin.expect("the test node has an admin listener");
    for path in ["/metrics", "/health"] {
        for wrong in [
            None,
            Some("Bearer nope"),
            Some("Basic czNjcmV0"),
            Some("s3cret"),
        ] {
            let (head, body) = http_get_with(admin, path, wrong).await;
            assert!(head.starts_with("HTTP/1.1 401"), "{path} {wrong:?}: {head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{head}"
            );
            assert!(!body.contains("dcache_"), "{body}");
        }
        let (head, body) = http_get_with(admin, path, Some("Bearer s3cret")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(!body.is_empty());
    }
    // A password changed at run time is the one asked for from then on.
    node.shared
        .update_config(|c| c.requirepass = "other".into());
    let (head, _) = http_get_with(admin, "/health", Some("Bearer s3cret")).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = http_get_with(admin, "/health", Some("Bearer other")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn without_a_password_admin_http_refuses_to_listen_beyond_loopback() {
    // Refused before binding: this never listens on 0.0.0.0.
    let err = dcache_server::Server::builder(test_config())
        .admin_addr("0.0.0.0:0".parse().unwrap())
        .bind()
        .await
        .err()
        .expect("the node refuses to start");
    let text = format!("{err:#}");
    assert!(
        text.contains("refusing to serve admin HTTP on 0.0.0.0:0 without a password"),
        "{text}"
    );
}

/// The eviction and expiry counters move when a key is evicted or expires, by as much as INFO
/// says.
#[tokio::test]
async fn eviction_and_expiry_counters_move() {
    let config = dcache_server::NodeConfig {
        maxmemory: dcache_server::ByteSize(1 << 20),
        maxmemory_policy: "allkeys-lru".into(),
        ..test_config()
    };
    let node = common::start_manual(config).await;
    let admin = node.admin.expect("the test node has an admin listener");
    let (_, before) = http_get(admin, "/metrics").await;
    assert_eq!(sample(&before, "dcache_evicted_keys_total"), 0.0);
    assert_eq!(sample(&before, "dcache_expired_keys_total"), 0.0);

    let mut c = node.client().await;
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(100)
        .query_async(&mut c)
        .await
        .unwrap();
    node.advance_ms(101);
    let gone: Option<String> = redis::cmd("GET")
        .arg("short")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(gone, None);
    // Three times the budget in 1 KiB values: some must go.
    let value = vec![b'x'; 1024];
    let mut pipe = redis::pipe();
    for i in 0..3 * 1024 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(&value).ignore();
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();

    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut c)
        .await
        .unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in INFO"))
            .trim()
            .parse()
            .unwrap()
    };
    let (_, after) = http_get(admin, "/metrics").await;
    let evicted = sample(&after, "dcache_evicted_keys_total");
    assert!(evicted > 0.0, "nothing evicted:\n{after}");
    assert_eq!(evicted, field("evicted_keys"));
    assert_eq!(sample(&after, "dcache_expired_keys_total"), 1.0);
    assert_eq!(field("expired_keys"), 1.0);
}
