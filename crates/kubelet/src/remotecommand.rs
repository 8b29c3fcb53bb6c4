//! The remote command protocol of `exec` and `attach`, as the kubelet
//! speaks it over WebSocket (`v5.channel.k8s.io`, and `v4` for older
//! clients such as kube-rs offering both):
//!
//! ```text
//!  binary message = [channel] ++ payload
//!    0 stdin   client -> us    raw bytes
//!    1 stdout  us -> client    raw bytes
//!    2 stderr  us -> client    raw bytes (none with a tty)
//!    3 error   us -> client    one Status JSON when the command ends, then close 1000
//!    4 resize  client -> us    {"Width":W,"Height":H}
//!  255 close   client -> us    [255, channel]: that stream reached EOF (v5 only)
//! ```
//!
//! This module has the pure parts (negotiation, request options, message
//! decoding, final statuses) and [`Channels`], the WebSocket end both
//! sessions ([`crate::exec`] and the attach in [`crate::logs`]) write to.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Channel of the command's stdin.
pub(crate) const STDIN: u8 = 0;
/// Channel of the command's stdout.
pub(crate) const STDOUT: u8 = 1;
/// Channel of the command's stderr.
pub(crate) const STDERR: u8 = 2;
/// Channel of the final status.
pub(crate) const ERROR: u8 = 3;
/// Channel of terminal size changes.
pub(crate) const RESIZE: u8 = 4;
/// v5: "this channel reached EOF".
pub(crate) const CLOSE: u8 = 255;

/// How long a finished session waits for the client's close frame.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A version of the channel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `v4.channel.k8s.io`: JSON status, no close signal.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
}

impl Protocol {
    /// The `Sec-WebSocket-Protocol` token.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::V4 => "v4.channel.k8s.io",
            Self::V5 => "v5.channel.k8s.io",
        }
    }

    /// The first protocol the client offers (comma-separated tokens, in
    /// its order of preference) that we speak.
    pub(crate) fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        offered
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .find_map(|p| [Self::V5, Self::V4].into_iter().find(|v| v.name() == p))
    }
}

/// The streams a request asks for (`exec` and `attach` query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StreamOptions {
    /// `command=` values, in order (exec only).
    pub command: Vec<String>,
    /// `stdin=true`.
    pub stdin: bool,
    /// `stdout=true`.
    pub stdout: bool,
    /// `stderr=true` (dropped with a tty, which merges it into stdout).
    pub stderr: bool,
    /// `tty=true`.
    pub tty: bool,
}

impl StreamOptions {
    /// Parse a query; `exec` requires a command.
    pub(crate) fn parse(query: &str, exec: bool) -> Result<Self, String> {
        let mut o = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let on = matches!(v.as_ref(), "1" | "true" | "True" | "TRUE");
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "stdin" | "input" => o.stdin = on,
                "stdout" | "output" => o.stdout = on,
                "stderr" | "error" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        if exec && o.command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        o.stderr &= !o.tty;
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// The new terminal size of a resize message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// What a client message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientFrame {
    /// Bytes for the command's stdin.
    Stdin(Bytes),
    /// The client's terminal changed size.
    Resize(TerminalSize),
    /// stdin reached EOF (v5).
    CloseStdin,
    /// Anything else (empty, unknown channel, malformed resize).
    Ignored,
}

impl ClientFrame {
    /// Decode one binary message.
    pub(crate) fn decode(protocol: Protocol, msg: &Bytes) -> Self {
        match msg.first() {
            Some(&STDIN) if msg.len() > 1 => Self::Stdin(msg.slice(1..)),
            Some(&RESIZE) => serde_json::from_slice(&msg[1..])
                .map(Self::Resize)
                .unwrap_or(Self::Ignored),
            Some(&CLOSE) if protocol == Protocol::V5 && msg.get(1) == Some(&STDIN) => {
                Self::CloseStdin
            }
            _ => Self::Ignored,
        }
    }
}

/// The final status of a command that exited with `code`.
pub(crate) fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: command '{}' exited with {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The final status of a session that failed on our side.
pub(crate) fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// The server end of an upgraded connection: channel messages out,
/// decoded client messages in.
pub(crate) struct Channels<S> {
    ws: WebSocketStream<S>,
    protocol: Protocol,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channels<S> {
    /// Speak `protocol` on `ws`.
    pub(crate) fn new(ws: WebSocketStream<S>, protocol: Protocol) -> Self {
        Self { ws, protocol }
    }

    /// Send `data` on `channel`.
    pub(crate) async fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), ()> {
        let mut msg = Vec::with_capacity(data.len() + 1);
        msg.push(channel);
        msg.extend_from_slice(data);
        self.ws.send(Message::binary(msg)).await.map_err(|_| ())
    }

    /// The next client message; `None` once the client closed the
    /// connection or it failed.
    pub(crate) async fn next(&mut self) -> Option<ClientFrame> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Binary(b)) => return Some(ClientFrame::decode(self.protocol, &b)),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Send the final status, close normally and wait briefly for the
    /// client's close.
    pub(crate) async fn finish(mut self, status: &Value) {
        if self
            .send(ERROR, status.to_string().as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if self.ws.close(Some(close)).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_client_order() {
        assert_eq!(
            Protocol::negotiate(["v5.channel.k8s.io"]),
            Some(Protocol::V5)
        );
        assert_eq!(
            Protocol::negotiate(["v4.channel.k8s.io, v5.channel.k8s.io"]),
            Some(Protocol::V4)
        );
        assert_eq!(
            Protocol::negotiate([
                "base64.channel.k8s.io",
                "v5.channel.k8s.io,v4.channel.k8s.io"
            ]),
            Some(Protocol::V5)
        );
        assert_eq!(Protocol::negotiate(["channel.k8s.io"]), None);
        assert_eq!(Protocol::negotiate([]), None);
    }

    #[test]
    fn options_as_kubectl_sends_them() {
        let o = StreamOptions::parse(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&container=c&stdin=true&stdout=true&tty=true",
            true,
        )
        .expect("valid");
        assert_eq!(o.command, ["sh", "-c", "echo hi; exit 3"]);
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        let o = StreamOptions::parse("command=ls&stdout=1&stderr=1&tty=1", true).expect("valid");
        assert!(!o.stderr, "a tty merges stderr into stdout");
        assert_eq!(
            StreamOptions::parse("stdout=true", true).unwrap_err(),
            "you must specify at least one command for the container"
        );
        assert_eq!(
            StreamOptions::parse("command=ls", true).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(StreamOptions::parse("stdout=true&stderr=true", false).is_ok());
    }

    #[test]
    fn client_frames() {
        let d = |p, b: &[u8]| ClientFrame::decode(p, &Bytes::copy_from_slice(b));
        assert_eq!(
            d(Protocol::V5, b"\x00hi\n"),
            ClientFrame::Stdin(Bytes::from_static(b"hi\n"))
        );
        assert_eq!(d(Protocol::V5, b"\x00"), ClientFrame::Ignored);
        assert_eq!(
            d(Protocol::V5, b"\x04{\"Width\":100,\"Height\":30}\n"),
            ClientFrame::Resize(TerminalSize {
                width: 100,
                height: 30
            })
        );
        assert_eq!(d(Protocol::V5, b"\x04{bad"), ClientFrame::Ignored);
        assert_eq!(d(Protocol::V5, &[CLOSE, STDIN]), ClientFrame::CloseStdin);
        assert_eq!(d(Protocol::V4, &[CLOSE, STDIN]), ClientFrame::Ignored);
        assert_eq!(d(Protocol::V5, &[CLOSE, STDOUT]), ClientFrame::Ignored);
        assert_eq!(d(Protocol::V5, b""), ClientFrame::Ignored);
    }

    #[test]
    fn statuses_as_kubectl_reads_them() {
        assert_eq!(
            exit_status(&["true".into()], 0),
            json!({"metadata": {}, "status": "Success"})
        );
        let s = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: command 'sh -c exit 3' exited with 3"
        );
        let e = internal_error("boom");
        assert_eq!(
            (e["reason"].as_str(), e["code"].as_i64()),
            (Some("InternalError"), Some(500))
        );
    }
}
