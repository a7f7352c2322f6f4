//! Emits an event and reads it back.
//!
//! ```sh
//! cargo run --example emit_event
//! ```
//!
//! Uses `PREFECT_API_URL` when set; otherwise starts a local Prefect server.

use std::time::Duration;

use prefect_client::types::ReadEventsBody as ReceivedEventsFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the server (if one was started) alive until the end.
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    let id = client
        .events()
        .emit("rust.example.batch.loaded", "rust.example.service")
        .payload(&serde_json::json!({ "rows": 500 }))
        .send()
        .await?;
    println!("emitted event {id}");
    let filter: ReceivedEventsFilter = serde_json::from_value(serde_json::json!({
        "filter": { "event": { "name": ["rust.example.batch.loaded"] } },
        "limit": 10
    }))?;
    // The server stores events asynchronously; they show up within a second or two.
    for _ in 0..40 {
        let page = client.events().list_page(&filter).await?;
        if let Some(event) = page.events.iter().find(|e| e.id == id) {
            println!("read back: {} {:?}", event.event, event.payload);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("event {id} did not appear within 10 s; check the server's event services").into())
}
