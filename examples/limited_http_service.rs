//! An HTTP service (axum) whose report endpoint runs at most as many requests at once as a
//! Prefect global concurrency limit allows, across every replica of the service: the
//! `ConcurrencyLayer` holds a slot around each request.
//!
//! ```sh
//! cargo run --example limited_http_service
//! ```
//!
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server.

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Router, extract::Path};
use prefect_client::Error;
use prefect_client::concurrency::{BoxError, ConcurrencyLayer};
use tower::ServiceBuilder;

/// The limit the endpoint shares with every other replica of the service.
const LIMIT: &str = "example-reports";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the server (if one was started) alive until the end.
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    let limits = client.global_concurrency_limits();
    if limits.get_by_name(LIMIT).await.is_err() {
        limits.create(LIMIT, 2).send().await?;
    }

    let app = Router::new().route("/report/{id}", get(report)).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(slots_error))
            .layer(ConcurrencyLayer::new(
                client.concurrency([LIMIT]).timeout(Duration::from_secs(10)),
            )),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{address}/report/<id>, at most 2 reports at once");

    // Eight requests at once: they run two at a time (about 4 × 200 ms).
    let http = prefect_client::reqwest::Client::new();
    let started = Instant::now();
    let requests: Vec<_> = (0..8)
        .map(|id| {
            let request = http.get(format!("http://{address}/report/{id}")).send();
            tokio::spawn(async move {
                let response = request.await?;
                Ok::<_, prefect_client::reqwest::Error>((response.status(), response.text().await?))
            })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await??;
        println!("{status} {body} (at {:.2} s)", started.elapsed().as_secs_f64());
    }
    limits.delete_by_name(LIMIT).await?;
    Ok(())
}

async fn report(Path(id): Path<u32>) -> String {
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("report {id}")
}

/// Turns a failure to get a slot into an HTTP answer.
async fn slots_error(error: BoxError) -> (StatusCode, String) {
    match error.downcast_ref::<Error>() {
        Some(e) if e.is_timeout() => (StatusCode::SERVICE_UNAVAILABLE, format!("busy: {e}")),
        Some(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}
