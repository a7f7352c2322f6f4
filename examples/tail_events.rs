//! Prints events as they happen, like `prefect events stream`: the last minute's first, then
//! each new one. Stop with Ctrl-C.
//!
//! ```sh
//! cargo run --example tail_events                      # every event
//! cargo run --example tail_events -- prefect.flow-run.  # events whose name starts with this
//! ```
//!
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server (and emits a few
//! events of its own there, so something shows).

use futures_util::StreamExt;
use prefect_client::types::{EventFilter, EventNameFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, server) = prefect_testkit::connect_or_start().await?;
    let mut filter = EventFilter::default();
    if let Some(prefix) = std::env::args().nth(1) {
        filter.event = Some(EventNameFilter {
            prefix: Some(vec![prefix]),
            ..Default::default()
        });
    }
    let mut events = client.events().subscribe(filter).await?;
    eprintln!("subscribed to {}; Ctrl-C to stop", client.api_url());
    if server.is_some() {
        let emitter = client.clone();
        tokio::spawn(async move {
            for n in 0..3 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let _ = emitter
                    .events()
                    .emit("rust.example.tick", "rust.example.tail")
                    .payload(&serde_json::json!({ "n": n }))
                    .send()
                    .await;
            }
        });
    }
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    let resource = event.resource.0.get("prefect.resource.id").map_or("", String::as_str);
                    println!("{} {} {resource} {}", event.occurred.to_rfc3339(), event.event, serde_json::Value::Object(event.payload));
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
