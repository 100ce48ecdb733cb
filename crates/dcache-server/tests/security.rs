//! A node on a real network: cross-protocol attacks, unauthenticated limits, protected mode.
//! Everything here talks to the node over loopback with raw bytes, as an attacker would.

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::{cmd, exchange, start, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the node logs while this test binary runs.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads until the peer closes (or ten seconds pass: then `None`), returning what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut got),
    )
    .await;
    match read {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

#[tokio::test]
async fn an_http_post_is_cut_off_before_its_body_runs() {
    let log = log();
    let node = start(test_config()).await;
    let mut bystander = node.client().await;
    let mut attacker = node.raw().await;
    let body = "SET k v\r\nSET k2 v2\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    attacker.write_all(request.as_bytes()).await.unwrap();
    let reply = read_to_close(&mut attacker)
        .await
        .expect("the node closes the connection");
    assert_eq!(String::from_utf8_lossy(&reply), "", "no reply at all");

    for key in ["k", "k2"] {
        assert_eq!(
            cmd(&mut bystander, &["EXISTS", key]).await.unwrap(),
            redis::Value::Int(0),
            "{key} must not be set"
        );
    }
    assert_eq!(
        cmd(&mut bystander, &["SET", "mine", "1"]).await.unwrap(),
        redis::Value::Okay
    );
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        text.contains(
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: \
             commands to dcache."
        ),
        "log: {text}"
    );
}

#[tokio::test]
async fn a_host_header_closes_even_after_an_innocent_line() {
    let node = start(test_config()).await;
    let mut attacker = node.raw().await;
    // GET is a real command: its line gets its error, then the Host: header ends the connection.
    attacker
        .write_all(b"GET / HTTP/1.1\r\nhOsT: example\r\n\r\nSET k v\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut attacker)
        .await
        .expect("the node closes the connection");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    let mut other = node.raw().await;
    assert_eq!(exchange(&mut other, b"EXISTS k\r\n", 4).await, b":0\r\n");
}

#[tokio::test]
async fn post_as_a_multibulk_request_closes_too() {
    let node = start(test_config()).await;
    let mut attacker = node.raw().await;
    attacker
        .write_all(b"*1\r\n$4\r\npost\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_to_close(&mut attacker).await.as_deref(),
        Some(&b""[..])
    );
    let mut other = node.raw().await;
    assert_eq!(exchange(&mut other, b"EXISTS k\r\n", 4).await, b":0\r\n");
}

fn with_password() -> dcache_server::NodeConfig {
    let mut config = test_config();
    config.requirepass = "s3cret".into();
    config
}

#[tokio::test]
async fn before_auth_more_than_ten_arguments_is_a_protocol_error() {
    let node = start(with_password()).await;
    let mut s = node.raw().await;
    // Refused on the count line alone: the node never waits for the arguments.
    s.write_all(b"*11\r\n").await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s).await.expect("closed")),
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut s = node.raw().await;
    let ten = "*10\r\n$3\r\nDEL\r\n".to_owned() + &"$1\r\nk\r\n".repeat(9);
    let noauth = b"-NOAUTH Authentication required.\r\n";
    assert_eq!(exchange(&mut s, ten.as_bytes(), noauth.len()).await, noauth);
}

#[tokio::test]
async fn before_auth_an_argument_over_16_kib_is_a_protocol_error() {
    let node = start(with_password()).await;
    let mut s = node.raw().await;
    s.write_all(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s).await.expect("closed")),
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // 16 KiB exactly is still a request, answered (wrongly authenticated) on an open connection.
    let mut s = node.raw().await;
    let mut request = b"*2\r\n$4\r\nAUTH\r\n$16384\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'p', 16384));
    request.extend_from_slice(b"\r\n");
    let wrong = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(exchange(&mut s, &request, wrong.len()).await, wrong);
    let noauth = b"-NOAUTH Authentication required.\r\n";
    assert_eq!(exchange(&mut s, b"PING\r\n", noauth.len()).await, noauth);
}

#[tokio::test]
async fn auth_lifts_the_limits_for_the_rest_of_the_same_pipeline() {
    let node = start(with_password()).await;
    let mut s = node.raw().await;
    let value = "v".repeat(20_000);
    let mut request = b"AUTH s3cret\r\n".to_vec();
    request.extend_from_slice(b"*11\r\n$4\r\nMSET\r\n");
    for i in 0..5 {
        request.extend_from_slice(format!("$2\r\nk{i}\r\n$1\r\n{i}\r\n").as_bytes());
    }
    request.extend_from_slice(
        format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$20000\r\n{value}\r\n").as_bytes(),
    );
    request.extend_from_slice(b"STRLEN big\r\nGET k4\r\n");
    let expected = b"+OK\r\n+OK\r\n+OK\r\n:20000\r\n$1\r\n4\r\n";
    assert_eq!(
        String::from_utf8_lossy(&exchange(&mut s, &request, expected.len()).await),
        String::from_utf8_lossy(expected)
    );
}

#[tokio::test]
async fn ping_needs_auth_but_hello_auth_and_quit_do_not() {
    let node = start(with_password()).await;
    let mut s = node.raw().await;
    let noauth = b"-NOAUTH Authentication required.\r\n";
    assert_eq!(exchange(&mut s, b"PING\r\n", noauth.len()).await, noauth);
    let got = exchange(&mut s, b"HELLO 3 AUTH default s3cret\r\n", 4).await;
    assert!(
        got.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut s = node.raw().await;
    assert_eq!(
        exchange(&mut s, b"AUTH s3cret\r\nPING\r\n", 12).await,
        b"+OK\r\n+PONG\r\n"
    );
    let mut s = node.raw().await;
    s.write_all(b"QUIT\r\n").await.unwrap();
    assert_eq!(
        read_to_close(&mut s).await.as_deref(),
        Some(&b"+OK\r\n"[..])
    );
}

#[tokio::test]
async fn without_a_password_there_is_no_unauthenticated_limit() {
    let node = start(test_config()).await;
    let mut s = node.raw().await;
    let mut request = b"*11\r\n$4\r\nMSET\r\n".to_vec();
    for i in 0..5 {
        request.extend_from_slice(format!("$2\r\nk{i}\r\n$1\r\n{i}\r\n").as_bytes());
    }
    request.extend_from_slice(b"PING\r\n");
    assert_eq!(exchange(&mut s, &request, 12).await, b"+OK\r\n+PONG\r\n");
}

// A peer from another host cannot be made over loopback, so the refusal itself is tested in
// `security::tests` (the decision, and a node's live configuration feeding it). Here: loopback
// clients are served under protected mode, and CONFIG reads and changes it.
#[tokio::test]
async fn protected_mode_serves_loopback_and_is_configurable() {
    let node = start(test_config()).await;
    let mut c = node.client().await;
    let get = || ["CONFIG", "GET", "protected-mode"];
    assert_eq!(
        cmd(&mut c, &get()).await.unwrap(),
        redis::Value::Array(vec![
            redis::Value::BulkString(b"protected-mode".to_vec()),
            redis::Value::BulkString(b"yes".to_vec()),
        ])
    );
    assert_eq!(
        cmd(&mut c, &["CONFIG", "SET", "protected-mode", "no"])
            .await
            .unwrap(),
        redis::Value::Okay
    );
    assert!(!node.shared.config().protected_mode.0);
    let err = cmd(&mut c, &["CONFIG", "SET", "protected-mode", "maybe"])
        .await
        .unwrap_err();
    assert_eq!(
        err.detail(),
        Some(
            "CONFIG SET failed (possibly related to argument 'protected-mode') - argument must \
             be 'yes' or 'no'"
        )
    );
}
