//! ACL users over the wire, with Redis's replies: an application user held to its keys and
//! categories, an administrator who is not, and the ACL subcommands' shapes.

mod common;

use common::{exchange, is_closed, read_until, start, test_config};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn ask(s: &mut TcpStream, request: &str, reply: &str) {
    let got = exchange(s, request.as_bytes(), reply.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), reply, "request {request:?}");
}

fn noperm_cmd(user: &str, cmd: &str) -> String {
    format!("-NOPERM User {user} has no permissions to run the '{cmd}' command\r\n")
}

const NOPERM_KEY: &str = "-NOPERM No permissions to access a key\r\n";

async fn node_with_app_user() -> (common::TestNode, TcpStream) {
    let mut config = test_config();
    config.requirepass = "adminpw".into();
    let node = start(config).await;
    let mut admin = node.raw().await;
    ask(&mut admin, "AUTH adminpw\r\n", "+OK\r\n").await;
    ask(
        &mut admin,
        "ACL SETUSER app on >apppw ~app:* +@read +@write -@admin -@dangerous\r\n",
        "+OK\r\n",
    )
    .await;
    (node, admin)
}

#[tokio::test]
async fn an_app_user_reads_and_writes_its_own_keys_and_nothing_else() {
    let (node, mut admin) = node_with_app_user().await;
    let mut app = node.raw().await;
    ask(&mut app, "AUTH app apppw\r\n", "+OK\r\n").await;
    ask(&mut app, "SET app:1 v\r\n", "+OK\r\n").await;
    ask(&mut app, "GET app:1\r\n", "$1\r\nv\r\n").await;
    ask(&mut app, "MSET app:2 a app:3 b\r\n", "+OK\r\n").await;
    ask(&mut app, "SET other v\r\n", NOPERM_KEY).await;
    ask(&mut app, "MGET app:1 other\r\n", NOPERM_KEY).await;
    ask(&mut app, "HSET other f v\r\n", NOPERM_KEY).await;
    ask(
        &mut app,
        "CONFIG GET maxmemory\r\n",
        &noperm_cmd("app", "config|get"),
    )
    .await;
    ask(&mut app, "FLUSHALL\r\n", &noperm_cmd("app", "flushall")).await;
    ask(&mut app, "KEYS *\r\n", &noperm_cmd("app", "keys")).await;
    ask(
        &mut app,
        "CLIENT KILL ID 1\r\n",
        &noperm_cmd("app", "client|kill"),
    )
    .await;
    ask(
        &mut app,
        "ACL SETUSER app allkeys\r\n",
        &noperm_cmd("app", "acl|setuser"),
    )
    .await;
    // Refused commands changed nothing; the admin sees everything the app wrote.
    ask(&mut admin, "DBSIZE\r\n", ":3\r\n").await;
    ask(&mut admin, "EXISTS other\r\n", ":0\r\n").await;
}

#[tokio::test]
async fn the_administrator_and_an_all_powerful_user_are_not_held() {
    let (node, mut admin) = node_with_app_user().await;
    ask(&mut admin, "SET other v\r\n", "+OK\r\n").await;
    ask(&mut admin, "KEYS other\r\n", "*1\r\n$5\r\nother\r\n").await;
    let got = read_until_reply(&mut admin, "CONFIG GET maxmemory\r\n").await;
    assert!(got.starts_with("*2\r\n$9\r\nmaxmemory\r\n"), "{got:?}");
    ask(
        &mut admin,
        "ACL SETUSER ops on >opspw allkeys allcommands\r\n",
        "+OK\r\n",
    )
    .await;
    let mut ops = node.raw().await;
    ask(&mut ops, "AUTH ops opspw\r\n", "+OK\r\n").await;
    ask(&mut ops, "ACL WHOAMI\r\n", "$3\r\nops\r\n").await;
    ask(&mut ops, "FLUSHALL\r\n", "+OK\r\n").await;
    ask(&mut ops, "DBSIZE\r\n", ":0\r\n").await;
}

#[tokio::test]
async fn wrong_passwords_and_disabled_users_get_wrongpass() {
    let (node, mut admin) = node_with_app_user().await;
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let mut app = node.raw().await;
    ask(&mut app, "AUTH app nope\r\n", wrongpass).await;
    ask(&mut app, "AUTH nobody apppw\r\n", wrongpass).await;
    ask(
        &mut app,
        "GET app:1\r\n",
        "-NOAUTH Authentication required.\r\n",
    )
    .await;
    // HELLO 3 AUTH authenticates as the user too.
    // (The app user may not PING: like Redis, PING is @connection.)
    app.write_all(b"HELLO 3 AUTH app apppw\r\n").await.unwrap();
    let hello = read_until(&mut app, b"$7\r\nmodules\r\n*0\r\n").await;
    assert!(hello.starts_with(b"%7\r\n"), "{hello:?}");
    ask(&mut app, "PING\r\n", &noperm_cmd("app", "ping")).await;
    ask(&mut app, "SET other v\r\n", NOPERM_KEY).await;
    ask(&mut app, "SET app:9 v\r\n", "+OK\r\n").await;
    ask(&mut admin, "ACL SETUSER app off\r\n", "+OK\r\n").await;
    let mut late = node.raw().await;
    ask(&mut late, "AUTH app apppw\r\n", wrongpass).await;
}

#[tokio::test]
async fn deleting_a_user_closes_its_connections() {
    let (node, mut admin) = node_with_app_user().await;
    let mut app = node.raw().await;
    ask(&mut app, "AUTH app apppw\r\n", "+OK\r\n").await;
    ask(&mut admin, "ACL DELUSER app ghost\r\n", ":1\r\n").await;
    assert!(is_closed(&mut app).await);
    ask(
        &mut admin,
        "ACL DELUSER default\r\n",
        "-ERR The 'default' user cannot be removed\r\n",
    )
    .await;
    ask(&mut admin, "ACL USERS\r\n", "*1\r\n$7\r\ndefault\r\n").await;
}

const NOPERM_CHANNEL: &str =
    "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n";

/// Channel rules as Redis 7 keeps them (checked against redis-server 7.0.15): a new user may use
/// no channel (`resetchannels`, Redis 7's default); `&pattern` allows the channels it matches for
/// SUBSCRIBE, SSUBSCRIBE, PUBLISH and SPUBLISH, and itself, letter for letter, for PSUBSCRIBE;
/// `allchannels` (`&*`) allows all; ACL LIST and GETUSER show them; a subscriber whose user loses
/// a channel it listens to is disconnected.
#[tokio::test]
async fn channel_rules_hold_as_in_redis() {
    let (node, mut admin) = node_with_app_user().await;
    let mut app = node.raw().await;
    ask(&mut app, "AUTH app apppw\r\n", "+OK\r\n").await;
    ask(&mut admin, "ACL SETUSER app +@pubsub\r\n", "+OK\r\n").await;
    ask(&mut app, "PUBLISH news hi\r\n", NOPERM_CHANNEL).await;
    ask(&mut app, "SUBSCRIBE news\r\n", NOPERM_CHANNEL).await;
    ask(&mut admin, "ACL SETUSER app &news:* &chat\r\n", "+OK\r\n").await;
    ask(&mut app, "PUBLISH news:eu hi\r\n", ":0\r\n").await;
    ask(&mut app, "PUBLISH chat hi\r\n", ":0\r\n").await;
    ask(&mut app, "PUBLISH sport hi\r\n", NOPERM_CHANNEL).await;
    // One channel out of bounds refuses the whole request.
    ask(&mut app, "SUBSCRIBE chat sport\r\n", NOPERM_CHANNEL).await;
    // A pattern must be one of the user's own: news:eu:* is narrower, but refused.
    ask(&mut app, "PSUBSCRIBE news:eu:*\r\n", NOPERM_CHANNEL).await;
    let text = read_until_reply(&mut admin, "ACL LIST\r\n").await;
    assert!(
        text.contains(" ~app:* resetchannels &news:* &chat -@all "),
        "{text}"
    );
    let getuser = read_until_reply(&mut admin, "ACL GETUSER app\r\n").await;
    assert!(
        getuser.contains("$8\r\nchannels\r\n$13\r\n&news:* &chat\r\n"),
        "{getuser}"
    );
    ask(
        &mut admin,
        "ACL SETUSER app allchannels &more\r\n",
        "-ERR Error in ACL SETUSER modifier '&more': Adding a pattern after the * pattern (or the \
         'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to \
         start with an empty list of channels\r\n",
    )
    .await;
    // The subscriber keeps its connection while its channels stay allowed, and loses it when
    // they do not.
    let mut sub = node.raw().await;
    ask(&mut sub, "AUTH app apppw\r\n", "+OK\r\n").await;
    ask(
        &mut sub,
        "PSUBSCRIBE news:*\r\n",
        "*3\r\n$10\r\npsubscribe\r\n$6\r\nnews:*\r\n:1\r\n",
    )
    .await;
    ask(&mut admin, "ACL SETUSER app &more\r\n", "+OK\r\n").await;
    ask(
        &mut sub,
        "SUBSCRIBE chat\r\n",
        "*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:2\r\n",
    )
    .await;
    ask(
        &mut admin,
        "ACL SETUSER app resetchannels &chat\r\n",
        "+OK\r\n",
    )
    .await;
    assert!(is_closed(&mut sub).await);
    // The others of the user, subscribed to nothing, stay.
    ask(&mut app, "PUBLISH chat hi\r\n", ":0\r\n").await;
    ask(&mut admin, "ACL SETUSER app &*\r\n", "+OK\r\n").await;
    ask(&mut app, "PUBLISH anything hi\r\n", ":0\r\n").await;
    let text = read_until_reply(&mut admin, "ACL LIST\r\n").await;
    assert!(text.contains(" ~app:* &* -@all "), "{text}");
}

#[tokio::test]
async fn acl_subcommands_answer_as_redis_does() {
    let (_node, mut admin) = node_with_app_user().await;
    ask(&mut admin, "ACL WHOAMI\r\n", "$7\r\ndefault\r\n").await;
    ask(
        &mut admin,
        "ACL USERS\r\n",
        "*2\r\n$3\r\napp\r\n$7\r\ndefault\r\n",
    )
    .await;
    // SHA-256 of the passwords, as Redis shows them.
    let app_hash = "71d3d4e36cf4bc4309fd7390ba79fc6a1d03d8d7b45ef26f04bcdff3ff116868";
    let app_line = format!(
        "user app on #{app_hash} ~app:* resetchannels -@all +@read +@write -@admin -@dangerous"
    );
    let text = read_until_reply(&mut admin, "ACL LIST\r\n").await;
    assert!(text.contains(&app_line), "{text}");
    assert!(
        text.contains("user default on #") && text.contains(" ~* &* +@all"),
        "{text}"
    );
    let getuser = format!(
        "*12\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n$64\r\n{app_hash}\r\n\
         $8\r\ncommands\r\n$40\r\n-@all +@read +@write -@admin -@dangerous\r\n$4\r\nkeys\r\n\
         $6\r\n~app:*\r\n$8\r\nchannels\r\n$0\r\n\r\n$9\r\nselectors\r\n*0\r\n"
    );
    ask(&mut admin, "ACL GETUSER app\r\n", &getuser).await;
    ask(&mut admin, "ACL GETUSER nobody\r\n", "$-1\r\n").await;
    // HELP takes nothing more (found by the differential fuzzer).
    ask(
        &mut admin,
        "ACL HELP extra\r\n",
        "-ERR wrong number of arguments for 'acl|help' command\r\n",
    )
    .await;
    ask(
        &mut admin,
        "ACL SETUSER x +nosuch\r\n",
        "-ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL\r\n",
    )
    .await;
    ask(
        &mut admin,
        "ACL SETUSER x bogus\r\n",
        "-ERR Error in ACL SETUSER modifier 'bogus': Syntax error\r\n",
    )
    .await;
    ask(
        &mut admin,
        "ACL CAT nosuch\r\n",
        "-ERR Unknown category 'nosuch'\r\n",
    )
    .await;
    let cats = exchange(&mut admin, b"ACL CAT\r\n", 10).await;
    assert!(cats.starts_with(b"*21\r\n$8\r\nkeyspace\r\n"), "{cats:?}");
    let dangerous = read_until_reply(&mut admin, "ACL CAT dangerous\r\n").await;
    for name in ["flushall", "keys", "config|set", "client|kill"] {
        assert!(
            dangerous.contains(&format!("\r\n{name}\r\n")),
            "{name}: {dangerous}"
        );
    }
    assert!(!dangerous.contains("\r\nget\r\n"));
}

async fn read_until_reply(s: &mut TcpStream, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    // A reply's length is not known in advance: a PING after it marks where it ends.
    s.write_all(b"PING\r\n").await.unwrap();
    let got = read_until(s, b"+PONG\r\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    text.strip_suffix("+PONG\r\n").unwrap_or(&text).to_owned()
}
