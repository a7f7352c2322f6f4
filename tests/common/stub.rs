//! A loopback HTTP stub for what a real Prefect server cannot do on demand: recording the exact
//! headers a client sends, and misbehaving (resets, stalls, error storms, bad bodies).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the stub does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer with this status, extra header lines and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without answering.
    Reset,
    /// Say nothing for this long, then close.
    Stall(Duration),
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
    /// An answer with a content type of choice.
    pub fn with_type(status: u16, content_type: &str, body: &str) -> Reply {
        Reply::Respond {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// One request as the stub saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A stub on 127.0.0.1 answering request `n` with `replies[n]` (the last reply repeats).
pub struct Stub {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// A stub that, like a default Prefect server, answers `/csrf-token` with 422 (CSRF
    /// protection disabled) outside the scripted replies.
    pub async fn start(replies: Vec<Reply>) -> Stub {
        Stub::start_with(replies, true, None).await
    }

    /// A stub whose scripted replies answer every request, `/csrf-token` included.
    pub async fn start_scripted(replies: Vec<Reply>) -> Stub {
        Stub::start_with(replies, false, None).await
    }

    /// Like [`Stub::start`], with a server keep-alive timeout as uvicorn's (Prefect's server):
    /// a request that comes on a connection idle for `keep_alive` or longer finds it closed
    /// under it, unanswered and unrecorded, as when the request crosses the server's close.
    pub async fn start_with_keep_alive(replies: Vec<Reply>, keep_alive: Duration) -> Stub {
        Stub::start_with(replies, true, Some(keep_alive)).await
    }

    async fn start_with(replies: Vec<Reply>, csrf_disabled: bool, keep_alive: Option<Duration>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(replies);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    let mut idle_since: Option<Instant> = None;
                    loop {
                        let Some(request) = read_request(&mut socket).await else {
                            return;
                        };
                        let expired = idle_since
                            .zip(keep_alive)
                            .is_some_and(|(since, k)| since.elapsed() >= k);
                        if expired {
                            return;
                        }
                        if csrf_disabled && request.path.starts_with("/api/csrf-token") {
                            let body = r#"{"detail":"CSRF protection is disabled."}"#;
                            let head = format!(
                                "HTTP/1.1 422 X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n",
                                body.len()
                            );
                            if socket.write_all(head.as_bytes()).await.is_err()
                                || socket.write_all(body.as_bytes()).await.is_err()
                            {
                                return;
                            }
                            idle_since = Some(Instant::now());
                            continue;
                        }
                        let index = {
                            let mut log = log.lock().unwrap();
                            log.push(request);
                            log.len() - 1
                        };
                        let reply = replies.get(index).or(replies.last()).cloned().unwrap();
                        match reply {
                            Reply::Reset => return,
                            Reply::Stall(d) => {
                                tokio::time::sleep(d).await;
                                return;
                            }
                            Reply::Respond {
                                status,
                                headers,
                                body,
                            } => {
                                let mut head =
                                    format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                                for (n, v) in headers {
                                    head.push_str(&format!("{n}: {v}\r\n"));
                                }
                                head.push_str("\r\n");
                                if socket.write_all(head.as_bytes()).await.is_err()
                                    || socket.write_all(&body).await.is_err()
                                {
                                    return;
                                }
                                idle_since = Some(Instant::now());
                            }
                        }
                    }
                });
            }
        });
        Stub { url, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}
