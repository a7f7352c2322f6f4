//! Shared by the integration tests: one real Prefect server per test binary.

#![allow(dead_code)]

pub mod proxy;
pub mod stub;

use prefect_client::Client;
use prefect_client::local_server::LocalServer;
use tokio::sync::OnceCell;

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();

/// The Prefect server of this test binary, started on first use (stopped when the binary exits).
/// Expired leases are freed within a second, so tests of lease expiry stay short.
pub async fn server() -> &'static LocalServer {
    SERVER
        .get_or_init(|| async {
            let builder = LocalServer::builder().env("PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS", "1");
            match builder.start().await {
                Ok(server) => server,
                Err(e) => panic!("cannot start the local Prefect server: {e}"),
            }
        })
        .await
}

/// A client of the shared server.
pub async fn client() -> Client {
    server().await.client().expect("client for the local server")
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Collects what a tracing subscriber writes: `fmt().with_writer(move || captured.clone())`.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
