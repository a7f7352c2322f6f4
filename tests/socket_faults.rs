//! Websocket faults a real Prefect server does not produce on demand, from a stub server:
//! garbage and binary frames, an upgrade answered with an HTML page, a handshake that never
//! ends. Each ends in bounded time with a typed error, never a panic or a hang.

// tungstenite's handshake callback type returns its large error type by value.
#![allow(clippy::result_large_err)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use prefect_client::streaming::Subscription;
use prefect_client::types::{EventFilter, ReceivedEvent};
use prefect_client::{Client, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// What the stub sends once the client authenticated and sent its filter.
#[derive(Clone)]
enum After {
    Text(&'static str),
    Binary,
    /// A valid event (the same every time, as a backfill repeats it), then this text.
    EventThen(&'static str),
}

const EVENT_FRAME: &str = r#"{"type":"event","event":{"id":"7b6c3c4e-1d2a-4f5b-9c8d-0e1f2a3b4c5d","occurred":"2026-12-01T12:00:00Z","received":"2026-12-01T12:00:00Z","event":"rust.test.tick","resource":{"prefect.resource.id":"rust.test.poison"}}}"#;

/// A stub of Prefect's websocket: the `prefect` subprotocol, `auth_success`, then `after`.
async fn stub_socket(after: After) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let after = after.clone();
            tokio::spawn(async move {
                let offer_prefect = |_: &Request, mut response: Response| {
                    response
                        .headers_mut()
                        .insert("sec-websocket-protocol", "prefect".parse().unwrap());
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, offer_prefect).await else {
                    return;
                };
                let _auth = socket.next().await;
                socket
                    .send(Message::text(r#"{"type":"auth_success"}"#))
                    .await
                    .unwrap();
                let _filter = socket.next().await;
                let frame = match after {
                    After::Text(text) => Message::text(text),
                    After::Binary => Message::binary(vec![0u8, 159, 146, 150]),
                    After::EventThen(text) => {
                        let _ = socket.send(Message::text(EVENT_FRAME)).await;
                        Message::text(text)
                    }
                };
                let _ = socket.send(frame).await;
                // Stay open: the client must give up on its own.
                while socket.next().await.is_some() {}
            });
        }
    });
    (url, connections)
}

/// A subscription to every event that gives up after two reconnects.
async fn subscribe_with_two_reconnects(client: &Client) -> Subscription<ReceivedEvent> {
    client
        .events()
        .subscribe(EventFilter::default())
        .max_reconnects(2)
        .await
        .unwrap()
}

/// The stream's last item, which must come within 30 s.
async fn stream_end(events: &mut Subscription<ReceivedEvent>) -> Result<ReceivedEvent, Error> {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the stream ends in bounded time")
        .expect("with an error")
}

/// The error that ends a subscription with two reconnects, and how long it took.
async fn end_of(client: &Client) -> (Error, Duration) {
    let started = Instant::now();
    let mut events = subscribe_with_two_reconnects(client).await;
    let end = stream_end(&mut events).await;
    (end.unwrap_err(), started.elapsed())
}

#[tokio::test]
async fn garbage_frames_end_the_stream_with_a_typed_error_after_bounded_reconnects() {
    for after in [
        After::Text("<html>502 Bad Gateway</html>"),
        After::Text("{\"type\":\"event\",\"event\":"),
        After::Binary,
    ] {
        let (url, connections) = stub_socket(after).await;
        let client = Client::new(&url).unwrap();
        let (error, took) = end_of(&client).await;
        assert!(matches!(error, Error::SocketLost { attempts: 2, .. }), "{error}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("not Prefect's JSON"), "{cause}");
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "first connection and two retries"
        );
        eprintln!("gave up in {took:?}");
    }
}

#[tokio::test]
async fn a_frame_that_never_decodes_behind_a_repeated_backfill_still_ends_the_stream() {
    // Each connection repeats the same event (a backfill), then a frame that does not decode:
    // the repeat is no proof the connection serves, so the reconnects still run out.
    let (url, connections) = stub_socket(After::EventThen("{\"type\":\"event\",\"event\":42}")).await;
    let client = Client::new(&url).unwrap();
    let mut events = subscribe_with_two_reconnects(&client).await;
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the event comes")
        .unwrap()
        .unwrap();
    assert_eq!(first.event, "rust.test.tick");
    let end = stream_end(&mut events).await;
    assert!(
        matches!(end, Err(Error::SocketLost { attempts: 2, .. })),
        "{end:?}"
    );
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_upgrade_answered_with_a_page_is_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let page = "<html>proxy says hello</html>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let client = Client::new(&url).unwrap();
    let error = client
        .events()
        .subscribe(EventFilter::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SocketRejected { .. }), "{error}");
    assert!(error.to_string().contains("does not pass websockets"), "{error}");
}

#[tokio::test]
async fn a_handshake_that_never_ends_fails_within_the_request_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = Client::builder(&url)
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = client
        .events()
        .subscribe(EventFilter::default())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, Error::SocketClosed { .. }), "{error}");
    assert!(error.to_string().contains("handshake"), "{error}");
    let error = client.events().emitter().await.unwrap_err();
    assert!(matches!(error, Error::SocketClosed { .. }), "{error}");
}
