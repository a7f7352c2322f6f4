//! A loopback TCP proxy for websocket faults: it relays bytes both ways, and on command cuts
//! every open connection or stalls them (holds the server's bytes back), as a load balancer or
//! a broken network would.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; the client's URL is [`TcpProxy::api_url`].
pub struct TcpProxy {
    pub api_url: String,
    /// Bumped to cut every connection open at that moment.
    cut: watch::Sender<u64>,
    stalled: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.listener.abort();
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl TcpProxy {
    /// A proxy in front of `backend_api_url` (`http://127.0.0.1:PORT/api`).
    pub async fn start(backend_api_url: &str) -> TcpProxy {
        let backend = reqwest::Url::parse(backend_api_url).unwrap();
        let backend_addr = format!("{}:{}", backend.host_str().unwrap(), backend.port().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}{}", listener.local_addr().unwrap(), backend.path());
        let (cut, _) = watch::channel(0u64);
        let stalled = Arc::new(AtomicBool::new(false));
        let refusing = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let state = (
            cut.clone(),
            stalled.clone(),
            refusing.clone(),
            accepted.clone(),
            tasks.clone(),
        );
        let listener = tokio::spawn(async move {
            let (cut, stalled, refusing, accepted, tasks) = state;
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&backend_addr).await else {
                    continue;
                };
                let task = tokio::spawn(relay(client, server, cut.subscribe(), stalled.clone()));
                tasks.lock().unwrap().push(task);
            }
        });
        TcpProxy {
            api_url,
            cut,
            stalled,
            refusing,
            accepted,
            tasks,
            listener,
        }
    }

    /// Cuts every connection open now (both sides see a reset or end).
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Holds (or again passes) every byte from the server to the client.
    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Closes new connections at once (or again accepts them).
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    mut cut: watch::Receiver<u64>,
    stalled: Arc<AtomicBool>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while stalled.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
        _ = cut.changed() => {}
    }
}
