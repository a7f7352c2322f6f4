//! A loopback fault proxy between a client and the real Prefect server: forwards every request,
//! except those a scripted fault matches, which it answers with an error status, resets, or
//! stalls — before the server sees the request or after it acted on it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prefect_client::reqwest;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::stub::{Seen, read_request};

/// A client of the shared server, a fault proxy in front of it, and a client through the proxy.
pub async fn proxied_clients() -> (prefect_client::Client, Arc<FaultProxy>, prefect_client::Client) {
    let direct = super::client().await;
    let proxy = Arc::new(FaultProxy::start(direct.api_url()).await);
    let through = prefect_client::Client::new(&proxy.api_url).unwrap();
    (direct, proxy, through)
}

/// What the proxy does to one matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers this status (and `Retry-After` seconds, if given) without forwarding.
    Status(u16, Option<&'static str>),
    /// Closes the connection without forwarding: the server never sees the request.
    ResetBefore,
    /// Forwards, lets the server act, then closes without answering: the answer is lost.
    ResetAfter,
    /// Forwards, then holds the server's answer this long before sending it.
    StallAfter(Duration),
    /// Holds the request this long before forwarding it: the server sees it late.
    StallBefore(Duration),
}

/// A fault for the next request whose method and path (after `/api`) match.
#[derive(Clone, Debug)]
struct Rule {
    method: &'static str,
    path_prefix: &'static str,
    fault: Fault,
}

/// Changes a successful JSON answer before the client reads it (as a newer server would).
pub type Rewrite = fn(&mut serde_json::Value);

/// The proxy; the client's URL is [`FaultProxy::api_url`].
pub struct FaultProxy {
    pub api_url: String,
    rules: Arc<Mutex<VecDeque<Rule>>>,
    forwarded: Arc<AtomicU64>,
    faults_applied: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy in front of `backend_api_url` (e.g. `http://127.0.0.1:4200/api`).
    pub async fn start(backend_api_url: &str) -> FaultProxy {
        FaultProxy::start_rewriting(backend_api_url, None).await
    }

    /// A proxy that also passes every successful JSON answer through `rewrite`.
    pub async fn start_rewriting(backend_api_url: &str, rewrite: Option<Rewrite>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}/api", listener.local_addr().unwrap());
        let backend = backend_api_url.trim_end_matches("/api").to_string();
        let rules: Arc<Mutex<VecDeque<Rule>>> = Arc::default();
        let forwarded = Arc::new(AtomicU64::new(0));
        let faults_applied = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let state = (
            rules.clone(),
            forwarded.clone(),
            faults_applied.clone(),
            log.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (rules, forwarded, applied, log) = state.clone();
                let (http, backend) = (http.clone(), backend.clone());
                tokio::spawn(serve(
                    socket, http, backend, rules, forwarded, applied, log, rewrite,
                ));
            }
        });
        FaultProxy {
            api_url,
            rules,
            forwarded,
            faults_applied,
            log,
            task,
        }
    }

    /// Applies `fault` to the next `times` requests `method path_prefix…` (path after `/api`).
    pub fn inject(&self, method: &'static str, path_prefix: &'static str, fault: Fault, times: usize) {
        let mut rules = self.rules.lock().unwrap();
        for _ in 0..times {
            rules.push_back(Rule {
                method,
                path_prefix,
                fault: fault.clone(),
            });
        }
    }

    /// Faults injected but not applied yet (no matching request came).
    pub fn pending_faults(&self) -> usize {
        self.rules.lock().unwrap().len()
    }

    /// Faults applied so far.
    pub fn faults_applied(&self) -> u64 {
        self.faults_applied.load(Ordering::SeqCst)
    }

    /// What happened to each request: method, path, fault, the server's status.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Requests the server received through the proxy.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// Requests `method path_prefix…` the server acted on (answered 2xx) through the proxy.
    pub fn acted_on(&self, method: &str, path_prefix: &str) -> usize {
        let prefix = format!("{method} /api{path_prefix}");
        self.log()
            .iter()
            .filter(|e| e.starts_with(&prefix) && e.contains(" -> 2"))
            .count()
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    mut socket: TcpStream,
    http: reqwest::Client,
    backend: String,
    rules: Arc<Mutex<VecDeque<Rule>>>,
    forwarded: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<String>>>,
    rewrite: Option<Rewrite>,
) {
    loop {
        let Some(request) = read_request(&mut socket).await else {
            return;
        };
        let fault = {
            let mut rules = rules.lock().unwrap();
            let path = request.path.trim_start_matches("/api");
            let index = rules
                .iter()
                .position(|r| r.method == request.method && path.starts_with(r.path_prefix));
            index.and_then(|i| rules.remove(i))
        };
        let (rule, fault) = (fault.clone(), fault.map(|r| r.fault));
        if fault.is_some() {
            applied.fetch_add(1, Ordering::SeqCst);
        }
        let entry = format!("{} {} {:?}", request.method, request.path, fault);
        match fault {
            Some(Fault::Status(status, retry_after)) => {
                let body = format!(r#"{{"detail":"injected {status}"}}"#);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                );
                if let Some(seconds) = retry_after {
                    head.push_str(&format!("retry-after: {seconds}\r\n"));
                }
                head.push_str("\r\n");
                if write(&mut socket, head.as_bytes(), body.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Some(Fault::ResetBefore) => {
                log.lock().unwrap().push(entry);
                return;
            }
            Some(Fault::StallBefore(stall)) => tokio::time::sleep(stall).await,
            _ => {}
        }
        forwarded.fetch_add(1, Ordering::SeqCst);
        let answer = forward(&http, &backend, &request, rewrite).await;
        log.lock().unwrap().push(format!(
            "{entry} -> {}",
            answer.as_ref().map_or("no answer", |(head, _)| &head[9..12])
        ));
        let Some((head, body)) = answer else {
            // The server is down: what a load balancer says then.
            let body = br#"{"detail":"bad gateway"}"#;
            let head = format!("HTTP/1.1 502 X\r\ncontent-length: {}\r\n\r\n", body.len());
            if write(&mut socket, head.as_bytes(), body).await.is_err() {
                return;
            }
            continue;
        };
        let acted = head.as_bytes().get(9) == Some(&b'2');
        if !acted && matches!(fault, Some(Fault::ResetAfter | Fault::StallAfter(_))) {
            // The server refused (SQLite answers concurrent writes with 503): the answer to lose
            // is that of a request the server acted on; keep the fault for the next one.
            if let Some(rule) = rule {
                rules.lock().unwrap().push_front(rule);
                applied.fetch_sub(1, Ordering::SeqCst);
            }
            if write(&mut socket, head.as_bytes(), &body).await.is_err() {
                return;
            }
            continue;
        }
        match fault {
            Some(Fault::ResetAfter) => return,
            Some(Fault::StallAfter(stall)) => tokio::time::sleep(stall).await,
            _ => {}
        }
        if write(&mut socket, head.as_bytes(), &body).await.is_err() {
            return;
        }
    }
}

async fn write(socket: &mut TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    socket.write_all(head).await?;
    socket.write_all(body).await
}

/// Sends the request to the server; the answer as an HTTP/1.1 head and body.
async fn forward(
    http: &reqwest::Client,
    backend: &str,
    request: &Seen,
    rewrite: Option<Rewrite>,
) -> Option<(String, Vec<u8>)> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).ok()?;
    let mut outgoing = http.request(method, format!("{backend}{}", request.path));
    for (name, value) in &request.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            outgoing = outgoing.header(name, value);
        }
    }
    let response = outgoing.body(request.body.clone()).send().await.ok()?;
    let status = response.status().as_u16();
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
    }
    let mut body = response.bytes().await.ok()?.to_vec();
    if let Some(rewrite) = rewrite.filter(|_| (200..300).contains(&status))
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        rewrite(&mut value);
        body = serde_json::to_vec(&value).unwrap();
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    Some((head, body))
}
