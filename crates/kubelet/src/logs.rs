//! Container logs as the kubelet serves them: a container's log file
//! (its stdout and stderr, every restart appended) from an offset
//! (`tailLines`), up to a limit (`limitBytes`), and followed while the
//! container runs (`follow`); and `attach`, which is following from the
//! end, sent on the stdout channel.
//!
//! The lab runtime writes the workloads' output straight to the file
//! (pods outlive their kubelet, so nothing sits in between), so lines
//! carry no time: `timestamps`, `sinceSeconds` and `sinceTime` are
//! refused rather than answered wrongly, and so is `previous` (restarts
//! share one file).

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite};

use crate::remotecommand::{Channels, STDOUT, exit_status, internal_error};
use crate::sandbox::ProcessId;

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Largest chunk read at once.
const CHUNK: usize = 32 * 1024;

/// What part of a log a request wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogOptions {
    /// Keep sending new output while the container runs.
    pub follow: bool,
    /// Start this many lines before the end.
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Parse a `containerLogs` query.
    pub(crate) fn parse(query: &str) -> Result<Self, String> {
        let mut o = Self::default();
        let number = |k: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("invalid {k} {v:?}: not a non-negative integer"))
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let on = v == "true" || v == "1";
            match k.as_ref() {
                "follow" => o.follow = on,
                "tailLines" => o.tail_lines = Some(number(&k, &v)?),
                "limitBytes" => o.limit_bytes = Some(number(&k, &v)?).filter(|n| *n > 0),
                "timestamps" | "previous" if on => {
                    return Err(format!(
                        "{k}=true is not supported: the lab runtime keeps one untimed log file per container"
                    ));
                }
                "sinceSeconds" | "sinceTime" => {
                    return Err(format!(
                        "{k} is not supported: the lab runtime does not record when lines were written"
                    ));
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// Where the last `n` lines of `data` start (a last line without its
/// newline counts).
fn tail_start(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// A container's log file and whether its process runs.
#[derive(Debug, Clone)]
pub(crate) struct LogSource {
    /// The file.
    pub path: PathBuf,
    /// The container's current process (`None`: not running).
    pub process: Option<ProcessId>,
}

impl LogSource {
    fn running(&self) -> bool {
        self.process.is_some_and(|p| p.alive())
    }
}

struct Reader {
    source: LogSource,
    file: Option<tokio::fs::File>,
    offset: u64,
    left: Option<u64>,
    follow: bool,
}

impl Reader {
    /// The next chunk; `None` at the end (EOF without follow, or EOF
    /// after the container stopped, or the limit reached).
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.left == Some(0) {
            return None;
        }
        loop {
            // Whether it ran before the read: output written before it
            // stopped is read below.
            let running = self.follow && self.source.running();
            let file = match &mut self.file {
                Some(f) => f,
                None => match tokio::fs::File::open(&self.source.path).await {
                    Ok(f) => self.file.insert(f),
                    Err(e) => return Some(Err(e)),
                },
            };
            let len = match file.metadata().await {
                Ok(m) => m.len(),
                Err(e) => return Some(Err(e)),
            };
            if len < self.offset {
                // Truncated by hand: start over.
                self.offset = 0;
            }
            let want = self.left.unwrap_or(CHUNK as u64).min(CHUNK as u64);
            let mut buf = vec![0; usize::try_from(want).unwrap_or(CHUNK)];
            let read = async {
                file.seek(SeekFrom::Start(self.offset)).await?;
                file.read(&mut buf).await
            };
            match read.await {
                Ok(0) if running => tokio::time::sleep(FOLLOW_POLL).await,
                Ok(0) => return None,
                Ok(n) => {
                    buf.truncate(n);
                    self.offset += n as u64;
                    self.left = self.left.map(|l| l - n as u64);
                    return Some(Ok(Bytes::from(buf)));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The log of `source` as `opts` asks, chunk by chunk; an error ends it.
pub(crate) async fn stream(
    source: LogSource,
    opts: LogOptions,
) -> std::io::Result<impl Stream<Item = Bytes> + Send + 'static> {
    let offset = match opts.tail_lines {
        Some(n) => tail_start(&tokio::fs::read(&source.path).await?, n) as u64,
        None => 0,
    };
    let reader = Reader {
        source,
        file: None,
        offset,
        left: opts.limit_bytes,
        follow: opts.follow,
    };
    Ok(futures::stream::unfold(reader, |mut r| async move {
        match r.next().await? {
            Ok(chunk) => Some((chunk, r)),
            Err(e) => {
                tracing::debug!(path = %r.source.path.display(), error = %e, "log read ended");
                None
            }
        }
    }))
}

/// `attach`: the container's new output on stdout until it stops (then
/// success) or the client leaves. Its stdin is not open (the lab's
/// containers read none), so stdin messages are dropped.
pub(crate) async fn attach<S>(mut chan: Channels<S>, source: LogSource)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opts = LogOptions {
        follow: true,
        tail_lines: Some(0),
        limit_bytes: None,
    };
    let output = match stream(source, opts).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot read the container's output: {e}");
            return chan.finish(&internal_error(&message)).await;
        }
    };
    let mut output = std::pin::pin!(output);
    loop {
        tokio::select! {
            chunk = futures::StreamExt::next(&mut output) => match chunk {
                Some(data) => {
                    if chan.send(STDOUT, &data).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            frame = chan.next() => match frame {
                Some(_) => {}
                None => return,
            },
        }
    }
    chan.finish(&exit_status(&[], 0)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn tail_offsets() {
        let d = b"a\nbb\nccc\n";
        assert_eq!(tail_start(d, 1), 5);
        assert_eq!(tail_start(d, 2), 2);
        assert_eq!(tail_start(d, 3), 0);
        assert_eq!(tail_start(d, 10), 0);
        assert_eq!(tail_start(d, 0), d.len());
        assert_eq!(tail_start(b"a\nno newline", 1), 2);
        assert_eq!(tail_start(b"", 3), 0);
    }

    #[test]
    fn options() {
        assert_eq!(
            LogOptions::parse("container=c&follow=true&tailLines=10&limitBytes=5"),
            Ok(LogOptions {
                follow: true,
                tail_lines: Some(10),
                limit_bytes: Some(5)
            })
        );
        assert_eq!(
            LogOptions::parse("timestamps=false&previous=false"),
            Ok(LogOptions::default())
        );
        assert!(
            LogOptions::parse("timestamps=true")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(LogOptions::parse("sinceSeconds=300").is_err());
        assert!(LogOptions::parse("tailLines=-1").is_err());
    }

    async fn collect(source: &LogSource, opts: LogOptions) -> String {
        let s = stream(source.clone(), opts).await.expect("stream");
        let chunks: Vec<Bytes> = s.collect().await;
        String::from_utf8(chunks.concat()).expect("utf8")
    }

    #[tokio::test]
    async fn reads_tails_limits_and_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        std::fs::write(&path, "one\ntwo\nthree\n").expect("write");
        let stopped = LogSource {
            path: path.clone(),
            process: None,
        };
        let all = LogOptions::default();
        assert_eq!(collect(&stopped, all).await, "one\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..all
        };
        assert_eq!(collect(&stopped, tail).await, "two\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..all
        };
        assert_eq!(collect(&stopped, limit).await, "one\ntw");
        // Following a stopped container ends at EOF.
        let follow = LogOptions {
            follow: true,
            ..tail
        };
        assert_eq!(collect(&stopped, follow).await, "two\nthree\n");

        // A running writer: its lines arrive, and the stream ends with it.
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                &format!("sleep 0.3; echo four >> {0}; sleep 0.3", path.display()),
            ])
            .spawn()
            .expect("writer");
        let pid = child.id().expect("pid") as i32;
        let running = LogSource {
            path: path.clone(),
            process: ProcessId::of(pid),
        };
        let reaper = tokio::spawn(async move { child.wait().await });
        let got = tokio::time::timeout(Duration::from_secs(5), collect(&running, follow))
            .await
            .expect("follow ends when the writer exits");
        assert_eq!(got, "two\nthree\nfour\n");
        reaper.await.expect("join").expect("wait");
        let missing = LogSource {
            path: dir.path().join("none.log"),
            process: None,
        };
        assert!(stream(missing.clone(), tail).await.is_err());
        assert_eq!(collect(&missing, all).await, "");
    }
}
