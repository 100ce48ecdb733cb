//! `dcache cli`: a redis-cli-like shell that routes every command through the client library.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use clap::Args;
use dcache_client::{Client, Error, Frame};

use crate::cli_hints::Hints;

/// The nodes `dcache launch` starts by default.
pub const DEFAULT_NODES: &str = "127.0.0.1:5000,127.0.0.1:5001,127.0.0.1:5002";

#[derive(Debug, Args)]
pub struct CliArgs {
    /// The nodes, comma-separated; keys are routed among them.
    #[arg(long, default_value = DEFAULT_NODES, value_delimiter = ',')]
    nodes: Vec<String>,
    /// The nodes' password (their --requirepass), sent on every connection; DCACHE_PASSWORD in
    /// the environment does the same without showing it in the process list.
    #[arg(long, short = 'a')]
    password: Option<String>,
    /// The user to authenticate as, with the password [default: default].
    #[arg(long)]
    user: Option<String>,
    /// A command to run; without one, commands are read from standard input (one per line) or,
    /// on a terminal, from a prompt with history and hints.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// A cluster client when the nodes are a cluster; a static client over independent nodes
/// (started with `--cluster-enabled no`), which answer `CLUSTER SLOTS` with an error, and when
/// the nodes refuse the cli's password or want one it was not given (each command then shows
/// the refusal, as redis-cli does).
pub async fn connect(builder: dcache_client::ClientBuilder) -> anyhow::Result<Client> {
    match builder.clone().cluster(true).build().await {
        Ok(client) => Ok(client),
        Err(e)
            if ["cluster support disabled", "NOAUTH", "WRONGPASS"]
                .iter()
                .any(|m| e.to_string().contains(m)) =>
        {
            Ok(builder.build().await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The nodes' password: the one given on the command line, else `DCACHE_PASSWORD`.
pub fn password(given: Option<&String>) -> Option<String> {
    given
        .cloned()
        .or_else(|| std::env::var("DCACHE_PASSWORD").ok())
}

pub fn run(args: CliArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let mut builder = Client::builder().nodes(args.nodes.clone());
        if let Some(password) = password(args.password.as_ref()) {
            builder = builder.password(password);
            if let Some(user) = &args.user {
                builder = builder.username(user.clone());
            }
        }
        let client = connect(builder).await?;
        let pretty = std::io::stdout().is_terminal();
        let mut out = std::io::stdout().lock();
        if !args.command.is_empty() {
            let reply = client.cmd(&args.command).await;
            print_reply(&mut out, reply, pretty)?;
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            for line in stdin.lock().lines() {
                let line = line?;
                if let Some(words) = words_of(&line, &mut out)? {
                    let reply = client.cmd(&words).await;
                    print_reply(&mut out, reply, pretty)?;
                }
            }
            return Ok(());
        }
        // A terminal: a prompt with history (up/down) and argument hints.
        let mut editor: rustyline::Editor<Hints, rustyline::history::DefaultHistory> =
            rustyline::Editor::new().context("cannot open the terminal")?;
        editor.set_helper(Some(Hints));
        let prompt = "dcache> ";
        loop {
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(
                    rustyline::error::ReadlineError::Interrupted
                    | rustyline::error::ReadlineError::Eof,
                ) => break,
                Err(e) => return Err(e.into()),
            };
            let _ = editor.add_history_entry(line.as_str());
            let Some(words) = words_of(&line, &mut out)? else {
                continue;
            };
            if words[0].eq_ignore_ascii_case(b"quit") || words[0].eq_ignore_ascii_case(b"exit") {
                break;
            }
            let reply = client.cmd(&words).await;
            print_reply(&mut out, reply, pretty)?;
        }
        Ok(())
    })
}

/// The words of a command line, with redis-cli's quoting; `None` for a blank or invalid line
/// (which says so).
fn words_of(line: &str, out: &mut impl Write) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
    match dcache_protocol::request::split_args(line.as_bytes()) {
        Ok(words) if words.is_empty() => Ok(None),
        Ok(words) => Ok(Some(words)),
        Err(_) => {
            writeln!(out, "Invalid argument(s)")?;
            Ok(None)
        }
    }
}

fn print_reply(
    out: &mut impl Write,
    reply: Result<Frame, Error>,
    pretty: bool,
) -> anyhow::Result<()> {
    match reply {
        Ok(frame) => {
            let mut text = String::new();
            if pretty {
                format_pretty(&frame, 0, &mut text);
            } else {
                format_raw(&frame, &mut text);
            }
            writeln!(out, "{text}")?;
        }
        Err(Error::Server(msg)) => {
            writeln!(
                out,
                "{}",
                if pretty {
                    format!("(error) {msg}")
                } else {
                    msg
                }
            )?;
        }
        Err(e) => {
            writeln!(out, "Could not complete the command: {e}")?;
            out.flush()?;
            anyhow::bail!("{e}");
        }
    }
    out.flush()?;
    Ok(())
}

/// A bulk string as redis-cli shows it on a terminal: quoted, with escapes.
fn quoted(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x07 => s.push_str("\\a"),
            0x08 => s.push_str("\\b"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// redis-cli's terminal format: `(integer) 1`, `"value"`, `(nil)`, numbered array items.
fn format_pretty(frame: &Frame, indent: usize, out: &mut String) {
    match frame {
        Frame::Simple(s) => out.push_str(s),
        Frame::Error(s) => out.push_str(&format!("(error) {s}")),
        Frame::Integer(i) => out.push_str(&format!("(integer) {i}")),
        Frame::Bulk(b) => out.push_str(&quoted(b)),
        Frame::Null => out.push_str("(nil)"),
        Frame::Double(d) => out.push_str(&format!(
            "(double) {}",
            dcache_protocol::reply::format_double(*d)
        )),
        Frame::Boolean(b) => out.push_str(if *b { "(true)" } else { "(false)" }),
        Frame::BigNumber(n) => out.push_str(&format!("(big number) {n}")),
        Frame::Verbatim { text, .. } => out.push_str(&String::from_utf8_lossy(text)),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            if items.is_empty() {
                out.push_str(if matches!(frame, Frame::Set(_)) {
                    "(empty set)"
                } else {
                    "(empty array)"
                });
            }
            let width = items.len().to_string().len();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(&format!("{:>width$}) ", i + 1));
                format_pretty(item, indent + width + 2, out);
            }
        }
        Frame::Map(pairs) => {
            if pairs.is_empty() {
                out.push_str("(empty hash)");
            }
            let width = pairs.len().to_string().len();
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(&format!("{:>width$}# ", i + 1));
                format_pretty(k, indent + width + 2, out);
                out.push_str(" => ");
                format_pretty(v, indent + width + 2, out);
            }
        }
    }
}

/// redis-cli's format when its output is not a terminal: values as they are, one per line.
fn format_raw(frame: &Frame, out: &mut String) {
    match frame {
        Frame::Simple(s) | Frame::Error(s) | Frame::BigNumber(s) => out.push_str(s),
        Frame::Integer(i) => out.push_str(&i.to_string()),
        Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => {
            out.push_str(&String::from_utf8_lossy(b))
        }
        Frame::Null => {}
        Frame::Double(d) => out.push_str(&dcache_protocol::reply::format_double(*d)),
        Frame::Boolean(b) => out.push_str(if *b { "1" } else { "0" }),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                format_raw(item, out);
            }
        }
        Frame::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                format_raw(k, out);
                out.push('\n');
                format_raw(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_print_like_redis_cli() {
        let table: Vec<(Frame, &str, &str)> = vec![
            (Frame::Simple("OK".into()), "OK", "OK"),
            (Frame::Integer(3), "(integer) 3", "3"),
            (
                Frame::Bulk("a \"b\"\n".into()),
                "\"a \\\"b\\\"\\n\"",
                "a \"b\"\n",
            ),
            (Frame::Null, "(nil)", ""),
            (Frame::Array(vec![]), "(empty array)", ""),
            (
                Frame::Array(vec![Frame::Bulk("x".into()), Frame::Null]),
                "1) \"x\"\n2) (nil)",
                "x\n",
            ),
            (
                Frame::Array(vec![
                    Frame::Bulk("0".into()),
                    Frame::Array(vec![Frame::Bulk("k".into())]),
                ]),
                "1) \"0\"\n2) 1) \"k\"",
                "0\nk",
            ),
        ];
        for (frame, pretty, raw) in table {
            let (mut p, mut r) = (String::new(), String::new());
            format_pretty(&frame, 0, &mut p);
            format_raw(&frame, &mut r);
            assert_eq!((p.as_str(), r.as_str()), (pretty, raw), "{frame:?}");
        }
    }
}
