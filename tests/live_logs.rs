//! Live log lines against real Prefect servers: over the `/logs/out` websocket when the server
//! streams logs (turned on here), and by polling `/logs/filter` when it does not (Prefect's
//! default); the same stream either way, in order, each line once, across a dropped connection.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use prefect_client::Client;
use prefect_client::resources::logs::{LogEntry, LogLevel};
use prefect_client::streaming::Subscription;
use prefect_client::types::{Log, LogFilter, LogFilterFlowRunId};
use prefect_testkit::LocalServer;
use uuid::Uuid;

use common::tcp_proxy::TcpProxy;

fn of_run(run: Uuid) -> LogFilter {
    LogFilter {
        flow_run_id: Some(LogFilterFlowRunId { any: Some(vec![run]) }),
        ..Default::default()
    }
}

/// Writes lines `range` of run `run`, one request each.
async fn write(client: &Client, run: Uuid, range: std::ops::Range<usize>) {
    for n in range {
        let line = LogEntry::new(LogLevel::Info, "rust.test", &format!("line {n}")).flow_run(run);
        client.logs().write([line]).await.unwrap();
    }
}

async fn take(lines: &mut Subscription<Log>, count: usize, within: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, lines.next()).await {
            Ok(Some(Ok(line))) => seen.push(line.message),
            Ok(Some(Err(e))) => panic!("the subscription failed after {seen:?}: {e}"),
            Ok(None) => panic!("the subscription ended after {seen:?}"),
            Err(_) => panic!("only {} of {count} lines within {within:?}: {seen:?}", seen.len()),
        }
    }
    seen
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("line {n}")).collect()
}

async fn assert_quiet(lines: &mut Subscription<Log>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(2500), lines.next()).await {
        panic!("an extra line arrived: {:?}", extra.map(|l| l.message));
    }
}

#[tokio::test]
async fn log_lines_stream_over_the_socket_and_survive_a_dropped_connection() {
    let server = LocalServer::builder().log_streaming().start().await.unwrap();
    let client = server.client().unwrap();
    assert_eq!(client.logs().server_streams_logs().await, Some(true));
    let proxy = TcpProxy::start(client.api_url()).await;
    let through = Client::new(&proxy.api_url).unwrap();
    let run = Uuid::new_v4();
    let mut lines = through.logs().subscribe(of_run(run)).await.unwrap();
    write(&client, run, 0..20).await;
    let mut seen = take(&mut lines, 20, Duration::from_secs(20)).await;
    proxy.cut_all();
    // Written while the socket is down or reconnecting: read back over REST.
    write(&client, run, 20..40).await;
    seen.extend(take(&mut lines, 20, Duration::from_secs(30)).await);
    assert_eq!(seen, expected(0..40));
    assert_quiet(&mut lines).await;
    assert!(
        proxy.accepted() >= 2,
        "it went through the socket and reconnected"
    );
}

#[tokio::test]
async fn without_log_streaming_the_subscription_polls() {
    let server = common::server().await;
    let client = server.client().unwrap();
    assert_eq!(client.logs().server_streams_logs().await, Some(false));
    let run = Uuid::new_v4();
    let mut lines = client.logs().subscribe(of_run(run)).await.unwrap();
    write(&client, run, 0..15).await;
    let mut seen = take(&mut lines, 15, Duration::from_secs(20)).await;
    write(&client, run, 15..30).await;
    seen.extend(take(&mut lines, 15, Duration::from_secs(20)).await);
    assert_eq!(seen, expected(0..30));
    assert_quiet(&mut lines).await;
}

#[tokio::test]
async fn a_polled_subscription_whose_server_goes_away_ends_with_a_typed_error() {
    let mut server = LocalServer::builder().start().await.unwrap();
    let client = Client::builder(server.api_url()).max_retries(0).build().unwrap();
    let mut lines = client
        .logs()
        .subscribe(of_run(Uuid::new_v4()))
        .max_reconnects(2)
        .await
        .unwrap();
    server.stop();
    let end = tokio::time::timeout(Duration::from_secs(30), lines.next())
        .await
        .expect("the stream ends in bounded time")
        .expect("with an error");
    let error = end.unwrap_err();
    assert!(
        matches!(error, prefect_client::Error::SocketLost { .. }),
        "{error}"
    );
    assert!(lines.next().await.is_none());
}
