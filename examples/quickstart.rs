//! Quickstart: create a tag concurrency limit, read it back, take and give back a slot, clean up.
//!
//! With PREFECT_API_URL set it uses that server (with PREFECT_API_KEY and Prefect's other
//! settings from the environment or the active profile); otherwise it starts a local Prefect
//! server of its own (installing Prefect into a cached venv once).
//!
//!     cargo run --example quickstart

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("quickstart failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the server (if one was started) alive until the end.
    let (client, _server) = prefect_testkit::connect_or_start().await?;
    println!("server version: {}", client.server_version().await?);

    let limits = client.concurrency_limits();
    let tag = format!("quickstart-{}", uuid::Uuid::new_v4().simple());
    let created = limits.create(&tag, 2).await?;
    println!(
        "created limit {} on tag {:?}: at most {} at once",
        created.id, created.tag, created.concurrency_limit
    );

    let read = limits.get_by_tag(&tag).await?;
    println!("read back: {read:#?}");

    // Take one slot for a (pretend) task run, look at the limit, and give the slot back.
    let task_run = uuid::Uuid::new_v4();
    limits.increment(&[&tag], task_run).await?;
    let busy = limits.get(created.id).await?;
    println!(
        "while held: {} of {} slots in use",
        busy.active_slots.len(),
        busy.concurrency_limit
    );
    limits.decrement(&[&tag], task_run).await?;
    let free = limits.get(created.id).await?;
    println!(
        "after release: {} of {} slots in use",
        free.active_slots.len(),
        free.concurrency_limit
    );

    limits.delete_by_tag(&tag).await?;
    match limits.get_by_tag(&tag).await {
        Err(e) if e.is_not_found() => println!("deleted {tag:?}; done"),
        Err(e) => return Err(e.into()),
        Ok(_) => println!("warning: {tag:?} is still there after delete"),
    }
    Ok(())
}
