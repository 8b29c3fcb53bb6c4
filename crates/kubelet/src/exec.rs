//! One `exec` session: the command's process with its stdio on pipes or
//! on a pty, wired to the client's [`Channels`]:
//!
//! ```text
//!  client ── stdin / resize / close ──> loop ──> stdin task ──> process stdin (pipe or pty)
//!  client <── stdout / stderr ───────── loop <── output tasks <── process stdout, stderr
//!  client <── status, close 1000 ─────── loop <── exit (after its output is drained)
//! ```
//!
//! Pumps run as tasks so that a command that does not read its stdin
//! never stops its output from flowing. A client that goes away kills
//! the command's process group. Where the process runs (the pod's
//! namespaces) is the caller's [`Command`].

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::process::Exit;
use crate::pty::{self, Resizer};
use crate::remotecommand::{
    Channels, ClientFrame, STDERR, STDOUT, StreamOptions, TerminalSize, exit_status, internal_error,
};

/// How long output may still arrive after the command exited (from
/// processes it left behind holding its stdout).
const DRAIN: Duration = Duration::from_secs(2);

/// How long a tty session waits for the client's terminal size before
/// starting its command (kubectl sends it first thing).
const FIRST_SIZE_WAIT: Duration = Duration::from_millis(250);

/// Output chunks in flight between the output tasks and the client.
const OUTPUT_QUEUE: usize = 16;
/// stdin messages in flight between the client and the stdin task.
const INPUT_QUEUE: usize = 64;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A started command and its ends of the streams.
struct Started {
    child: Child,
    stdin: Option<Writer>,
    outputs: Vec<(u8, Reader)>,
    terminal: Option<Resizer>,
}

/// Start `cmd` with the streams `opts` asks for: a new pty of `size`
/// (stdin, stdout and stderr on its slave; the caller makes it the
/// controlling terminal) or pipes, the process in its own process group.
fn start(
    mut cmd: Command,
    opts: &StreamOptions,
    size: Option<TerminalSize>,
) -> std::io::Result<Started> {
    cmd.kill_on_drop(true);
    if opts.tty {
        let (master, slave) = pty::open()?;
        if let Some(s) = size {
            master.size.resize(s.width, s.height)?;
        }
        cmd.stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave)
            .env("TERM", "xterm");
        let child = cmd.spawn()?;
        // Our copies of the slave go with `cmd`: the output ends when
        // the command's copies close.
        drop(cmd);
        return Ok(Started {
            child,
            stdin: opts.stdin.then(|| Box::new(master.input) as Writer),
            outputs: vec![(STDOUT, Box::new(master.output))],
            terminal: Some(master.size),
        });
    }
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd
        .stdin(piped(opts.stdin))
        .stdout(piped(opts.stdout))
        .stderr(piped(opts.stderr))
        .process_group(0)
        .spawn()?;
    let mut outputs: Vec<(u8, Reader)> = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push((STDOUT, Box::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push((STDERR, Box::new(err)));
    }
    Ok(Started {
        stdin: child.stdin.take().map(|w| Box::new(w) as Writer),
        child,
        outputs,
        terminal: None,
    })
}

/// Run `cmd` (whose argv is `command`, for the status message) for the
/// client on `chan` until it exits, then report its exit status; or
/// until the client goes away, then kill it.
pub(crate) async fn run<S>(mut chan: Channels<S>, opts: StreamOptions, cmd: Command)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut first = None;
    if opts.tty {
        match tokio::time::timeout(FIRST_SIZE_WAIT, chan.next()).await {
            Ok(None) => return,
            Ok(Some(frame)) => first = Some(frame),
            Err(_) => {}
        }
    }
    let size = match &first {
        Some(ClientFrame::Resize(size)) => Some(*size),
        _ => None,
    };
    let Started {
        mut child,
        stdin,
        outputs,
        terminal,
    } = match start(cmd, &opts, size) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot start {:?}: {e}", opts.command);
            return chan.finish(&internal_error(&message)).await;
        }
    };
    let mut tasks = JoinSet::new();
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Bytes)>(OUTPUT_QUEUE);
    for (channel, reader) in outputs {
        // With a tty and no stdout wanted, the pty is still read (the
        // command would block) and its output dropped.
        let keep = channel != STDOUT || opts.stdout;
        tasks.spawn(pump_output(reader, channel, keep, out_tx.clone()));
    }
    drop(out_tx);
    let mut in_tx = stdin.map(|w| {
        let (tx, rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        tasks.spawn(pump_input(rx, w));
        tx
    });

    if let Some(frame) = first {
        deliver(frame, &mut in_tx, terminal.as_ref()).await;
    }

    let mut exit: Option<Exit> = None;
    let mut drain_until = Instant::now();
    let mut outputs_open = true;
    while exit.is_none() || outputs_open {
        tokio::select! {
            status = child.wait(), if exit.is_none() => {
                exit = Some(match status {
                    Ok(st) => Exit { code: st.code(), signal: st.signal() },
                    Err(_) => Exit { code: None, signal: None },
                });
                drain_until = Instant::now() + DRAIN;
            }
            out = out_rx.recv(), if outputs_open => match out {
                Some((channel, data)) => {
                    if chan.send(channel, &data).await.is_err() {
                        return kill(&mut child).await;
                    }
                }
                None => outputs_open = false,
            },
            () = sleep_until(drain_until), if exit.is_some() && outputs_open => {
                outputs_open = false;
            }
            frame = chan.next() => match frame {
                Some(frame) => deliver(frame, &mut in_tx, terminal.as_ref()).await,
                None => return kill(&mut child).await,
            },
        }
    }
    drop(tasks);
    let code = exit.map_or(0, |e| e.exit_code());
    chan.finish(&exit_status(&opts.command, code)).await;
}

/// Act on a client message: stdin to the command (`None` once closed),
/// a size to its terminal.
async fn deliver(
    frame: ClientFrame,
    stdin: &mut Option<mpsc::Sender<Bytes>>,
    terminal: Option<&Resizer>,
) {
    match frame {
        ClientFrame::Stdin(data) => {
            if let Some(tx) = stdin
                && tx.send(data).await.is_err()
            {
                *stdin = None;
            }
        }
        ClientFrame::Resize(size) => {
            if let Some(t) = terminal
                && let Err(e) = t.resize(size.width, size.height)
            {
                tracing::debug!(error = %e, "cannot resize the terminal");
            }
        }
        ClientFrame::CloseStdin => *stdin = None,
        ClientFrame::Ignored => {}
    }
}

/// Copy `reader` to `tx` as `channel` chunks until EOF (dropping them
/// unless `keep`).
async fn pump_output(mut reader: Reader, channel: u8, keep: bool, tx: mpsc::Sender<(u8, Bytes)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if keep
                    && tx
                        .send((channel, Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Write what arrives on `rx` to the command's stdin; closing `rx` closes
/// the pipe (a pty stays open: its EOF is the terminal's business).
async fn pump_input(mut rx: mpsc::Receiver<Bytes>, mut writer: Writer) {
    while let Some(data) = rx.recv().await {
        if writer.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Kill the command's process group (its own: a new group or session)
/// and reap it.
async fn kill(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok())
        && killpg(Pid::from_raw(pid), Signal::SIGKILL).is_err()
    {
        let _ = child.start_kill();
    }
    let _ = child.wait().await;
}

#[cfg(test)]
mod tests {
    //! The session against a real client over an in-memory connection:
    //! plain processes stand in for the sandbox helper (no namespaces
    //! needed), so this runs as any user.

    use super::*;
    use crate::remotecommand::{CLOSE, ERROR, Protocol, RESIZE, STDIN};
    use futures::{SinkExt, StreamExt};
    use serde_json::Value;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// What a client saw.
    #[derive(Debug, Default)]
    struct Seen {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        status: Option<Value>,
        closed: bool,
    }

    /// Run `argv` with `opts` in a session; the client sends `input`
    /// messages first, then reads everything.
    async fn session(argv: &[&str], opts: StreamOptions, input: Vec<Vec<u8>>) -> Seen {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = async move {
            let ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]);
            run(Channels::new(ws, Protocol::V5), opts, cmd).await;
        };
        let client = async move {
            let mut ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
            for m in input {
                ws.send(Message::binary(m)).await.expect("send");
            }
            let mut seen = Seen::default();
            while let Some(m) = ws.next().await {
                match m.expect("message") {
                    Message::Binary(b) => match b[0] {
                        STDOUT => seen.stdout.extend_from_slice(&b[1..]),
                        STDERR => seen.stderr.extend_from_slice(&b[1..]),
                        ERROR => seen.status = Some(serde_json::from_slice(&b[1..]).expect("json")),
                        c => panic!("unexpected channel {c}"),
                    },
                    Message::Close(_) => seen.closed = true,
                    _ => {}
                }
            }
            seen
        };
        let ((), seen) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(server, client)
        })
        .await
        .expect("session ends");
        seen
    }

    fn opts(stdin: bool, tty: bool) -> StreamOptions {
        StreamOptions {
            command: vec!["cmd".into()],
            stdin,
            stdout: true,
            stderr: !tty,
            tty,
        }
    }

    #[tokio::test]
    async fn output_and_exit_codes() {
        let s = session(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            opts(false, false),
            vec![],
        )
        .await;
        assert_eq!(s.stdout, b"out\n");
        assert_eq!(s.stderr, b"err\n");
        let status = s.status.expect("status");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        assert!(s.closed, "normal close after the status");

        let s = session(&["true"], opts(false, false), vec![]).await;
        assert_eq!(s.status.expect("status")["status"], "Success");

        let s = session(&["sh", "-c", "kill -9 $$"], opts(false, false), vec![]).await;
        assert_eq!(
            s.status.expect("status")["details"]["causes"][0]["message"],
            "137"
        );

        let s = session(&["/nonexistent/cmd"], opts(false, false), vec![]).await;
        assert_eq!(s.status.expect("status")["reason"], "InternalError");
    }

    #[tokio::test]
    async fn stdin_until_its_close_signal() {
        let s = session(
            &["sh", "-c", "cat; echo done"],
            opts(true, false),
            vec![
                b"\x00hello ".to_vec(),
                b"\x00world\n".to_vec(),
                vec![CLOSE, STDIN],
            ],
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&s.stdout), "hello world\ndone\n");
        assert_eq!(s.status.expect("status")["status"], "Success");
    }

    #[tokio::test]
    async fn tty_with_resize() {
        let s = session(
            &["sh", "-c", "stty size; read x; test -t 0 && echo tty"],
            opts(true, true),
            vec![
                [&[RESIZE][..], br#"{"Width":100,"Height":30}"#].concat(),
                b"\x00go\n".to_vec(),
            ],
        )
        .await;
        let out = String::from_utf8_lossy(&s.stdout);
        // The size sent first is the terminal's from the start; the
        // terminal echoes the input and turns \n into \r\n.
        assert!(out.contains("go\r\n"), "{out:?}");
        assert!(out.contains("30 100\r\n"), "{out:?}");
        assert!(out.contains("tty\r\n"), "{out:?}");
        assert!(s.stderr.is_empty());
        assert_eq!(s.status.expect("status")["status"], "Success");
    }

    #[tokio::test]
    async fn a_client_that_leaves_kills_the_command() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; echo up; exec sleep 30", pidfile.display());
        let server = tokio::spawn(async move {
            let ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &script]);
            run(Channels::new(ws, Protocol::V5), opts(false, false), cmd).await;
        });
        let mut ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let first = ws.next().await.expect("output").expect("message");
        assert_eq!(first.into_data().as_ref(), b"\x01up\n");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        ws.close(None).await.expect("close");
        drop(ws);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("session ends")
            .expect("no panic");
        assert!(
            crate::sandbox::ProcessId::of(pid).is_none(),
            "command killed"
        );
    }
}
