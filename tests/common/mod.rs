//! Shared by the integration tests: one real Prefect server per test binary.

#![allow(dead_code)]

pub mod stub;

use prefect_client::Client;
use prefect_client::local_server::LocalServer;
use tokio::sync::OnceCell;

static SERVER: OnceCell<LocalServer> = OnceCell::const_new();

/// The Prefect server of this test binary, started on first use (stopped when the binary exits).
pub async fn server() -> &'static LocalServer {
    SERVER
        .get_or_init(|| async {
            match LocalServer::start().await {
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
