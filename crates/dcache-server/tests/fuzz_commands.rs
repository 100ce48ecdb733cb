//! A command fuzzer: seeded random sequences of every command in the node's table, with random,
//! boundary and hostile arguments. After every command the connection gets a reply (within a
//! timeout) and a fresh connection still answers PING, and no worker thread panics. Raw frames
//! follow: bulk lengths declared and never sent, absurd counts, random bytes. (`fuzz_redis.rs`
//! sends the same kind of sequences to a real `redis-server` and compares the replies.)
//!
//! Every run prints its seed. `DCACHE_FUZZ_SEED=<seed>` replays one; `DCACHE_FUZZ_SEQUENCES` and
//! `DCACHE_FUZZ_COMMANDS` lengthen a run (the README's test section has the long command).
//!
//! The node runs in-process, so its limits are lowered (`proto-max-bulk-len 1mb`, a 64 MB
//! memory budget): every count, offset and length path is exercised with hostile numbers while
//! what a command may legitimately allocate stays small enough for the test process.

mod common;

mod fuzz;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{start, test_config};
use dcache_server::ByteSize;
use fuzz::{Conn, Mode, Rng, Settings};
use tokio::io::AsyncWriteExt;

/// Panics on the node's worker threads (`tokio-rt-worker`, `tokio-runtime-worker` in older
/// tokio) since the hook was installed.
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        if thread.name().is_some_and(|n| n.starts_with("tokio-r")) {
            WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
}

fn fuzz_config() -> dcache_server::NodeConfig {
    let mut config = test_config();
    config.proto_max_bulk_len = ByteSize(1024 * 1024);
    config.client_query_buffer_limit = ByteSize(2 * 1024 * 1024);
    config.maxmemory = ByteSize(64 * 1024 * 1024);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_breaks_the_node() {
    count_worker_panics();
    let settings = Settings::from_env(12, 150);
    settings.announce("no_command_breaks_the_node");
    let node = start(fuzz_config()).await;
    let addr = node.addr;
    let mut rng = Rng::new(settings.seed);
    for sequence in 0..settings.sequences {
        let mut conn = Conn::connect(addr).await;
        let mut sent: Vec<String> = Vec::new();
        for request in fuzz::setup(&mut rng) {
            conn.call(&request).await.expect("set-up commands answer");
        }
        let mut left = settings.commands;
        while left > 0 {
            // Mostly one command at a time; now and then a pipeline of up to 16 in one write.
            let size = if rng.below(8) == 0 {
                2 + rng.below(15)
            } else {
                1
            }
            .min(left);
            left -= size;
            let mut batch = Vec::with_capacity(size);
            while batch.len() < size {
                let request = fuzz::command(&mut rng, Mode::Hostile);
                // What may close the connection goes alone, so that no reply goes missing.
                if size > 1 && fuzz::may_close(&request) {
                    continue;
                }
                sent.push(fuzz::show(&request));
                batch.push(request);
            }
            let failure = conn.pipeline(&batch).await.err();
            let alive = Conn::connect(addr).await.ping().await;
            if let Some(e) = failure.or_else(|| (!alive).then(|| "PING got no answer".into())) {
                panic!(
                    "seed {} sequence {sequence}: {e}\nafter:\n{}",
                    settings.seed,
                    sent.join("\n")
                );
            }
            if batch.iter().any(|r| fuzz::may_close(r)) {
                conn = Conn::connect(addr).await;
            }
        }
        // The next sequence starts from the same settings and an empty keyspace.
        let mut admin = Conn::connect(addr).await;
        for request in fuzz::reset() {
            admin.call(&request).await.expect("reset answers");
        }
    }
    raw_frames(&node, &mut rng).await;
    assert_eq!(
        WORKER_PANICS.load(Ordering::SeqCst),
        0,
        "seed {}: a worker panicked (its message is above)",
        settings.seed
    );
}

/// Frames a command generator never writes: lengths that promise more than ever arrives, counts
/// past every limit, unbalanced quotes and random bytes. Whatever the node answers to each, a
/// fresh connection must still get PONG.
async fn raw_frames(node: &common::TestNode, rng: &mut Rng) {
    let addr = node.addr;
    let mut frames: Vec<Vec<u8>> = vec![
        b"*1\r\n$536870912\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n$1048576\r\nabc".to_vec(),
        b"*2147483647\r\n".to_vec(),
        b"*2147483648\r\n".to_vec(),
        b"*-9223372036854775808\r\n".to_vec(),
        b"*1048576\r\n$4\r\nPING\r\n".to_vec(),
        b"*3\r\n$3\r\nSET\r\n$-1\r\n$1\r\nx\r\n".to_vec(),
        b"*1\r\n$9223372036854775807\r\n".to_vec(),
        b"*1\r\n$18446744073709551616\r\n".to_vec(),
        b"SET \"unbalanced x\r\n".to_vec(),
        b"\r\n\r\n*0\r\n*-1\r\nPING\r\n".to_vec(),
        vec![b'*'; 70_000],
    ];
    for _ in 0..20 {
        let len = rng.below(300);
        frames.push((0..len).map(|_| rng.next() as u8).collect());
    }
    for frame in &frames {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = socket.write_all(frame).await;
        let _ = socket.flush().await;
        // The node either answers, waits for the rest, or closes; none of those may stop it.
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(
            Duration::from_millis(50),
            tokio::io::AsyncReadExt::read(&mut socket, &mut buf),
        )
        .await;
        assert!(
            Conn::connect(addr).await.ping().await,
            "no PONG after raw frame {:?}",
            String::from_utf8_lossy(&frame[..frame.len().min(80)])
        );
    }
    // A declared 512 MB argument on a node that allows one: it waits for the bytes, holding only
    // what arrived.
    let mut config = test_config();
    config.maxmemory = ByteSize(64 * 1024 * 1024);
    let roomy = start(config).await;
    let mut pending = tokio::net::TcpStream::connect(roomy.addr).await.unwrap();
    pending
        .write_all(b"*2\r\n$3\r\nGET\r\n$536870912\r\nsome")
        .await
        .unwrap();
    assert!(Conn::connect(roomy.addr).await.ping().await);
}
