//! CSRF protection: a real server with PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED=true, and a
//! stub for a token the server stops accepting.

mod common;

use std::time::Duration;

use common::stub::{Reply, Stub};
use common::{new_global_limit, unique};
use prefect_client::Client;
use prefect_testkit::LocalServer;

#[tokio::test]
async fn a_protected_server_accepts_the_clients_changes() {
    let server = LocalServer::builder()
        .env("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "true")
        .env("PREFECT_SERVER_API_CSRF_TOKEN_EXPIRATION", "PT2S")
        .start()
        .await
        .unwrap();
    // Without a token the server refuses changes: the protection is on.
    let bare = reqwest::Client::new()
        .post(format!("{}/concurrency_limits/", server.api_url()))
        .json(&serde_json::json!({ "tag": "x", "concurrency_limit": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 403);
    assert!(bare.text().await.unwrap().contains("CSRF"));

    let client = server.client().unwrap();
    let limits = client.concurrency_limits();
    let tag = unique("csrf");
    limits.create(&tag, 1).await.unwrap();
    // Past the token's expiry the client fetches a new one by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    limits.create(&tag, 2).await.unwrap();
    limits.delete_by_tag(&tag).await.unwrap();
    // Slot guards work through it too (POSTs to take and give back slots).
    let name = new_global_limit(&client, "csrf-slots", 1).await;
    client.concurrency([name.as_str()]).hold(async {}).await.unwrap();
    assert_eq!(common::active_slots(&client, &name).await, 0);

    // With PREFECT_CLIENT_CSRF_SUPPORT_ENABLED=false no token is sent: the server refuses.
    let api_url = server.api_url().to_string();
    let config = prefect_client::Config::from_lookup(|name| match name {
        "PREFECT_API_URL" => Some(api_url.clone()),
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED" => Some("false".into()),
        "PREFECT_HOME" => Some("/nonexistent".into()),
        _ => None,
    })
    .unwrap();
    let without = prefect_client::Client::from_config(config).unwrap();
    let err = without.concurrency_limits().create(&tag, 1).await.unwrap_err();
    assert!(matches!(err, prefect_client::Error::Forbidden(_)), "{err:?}");
    assert!(err.to_string().contains("CSRF"), "{err}");
}

#[tokio::test]
async fn a_rejected_token_is_replaced_and_the_request_sent_again() {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let token = |t: &str| {
        Reply::json(
            200,
            &format!(r#"{{"token":"{t}","client":"c","expiration":"{expires}"}}"#),
        )
    };
    let limit = r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":null,"updated":null,"tag":"t","concurrency_limit":2,"active_slots":[]}"#;
    let stub = Stub::start_scripted(vec![
        token("first"),
        Reply::json(403, r#"{"detail":"Invalid CSRF token or client identifier."}"#),
        token("second"),
        Reply::json(201, limit),
    ])
    .await;
    let client = Client::new(&stub.url).unwrap();
    client.concurrency_limits().create("t", 2).await.unwrap();
    let seen = stub.requests();
    let tokens: Vec<Option<&str>> = seen.iter().map(|r| r.header("prefect-csrf-token")).collect();
    assert_eq!(seen.len(), 4);
    assert!(seen[0].path.starts_with("/api/csrf-token?client="));
    assert_eq!(tokens[1], Some("first"));
    assert_eq!(tokens[3], Some("second"));
    assert_eq!(
        seen[1].header("prefect-csrf-client"),
        seen[3].header("prefect-csrf-client")
    );

    // A 403 that is not about CSRF comes back as it is, once.
    let stub = Stub::start(vec![Reply::json(403, r#"{"detail":"Not allowed"}"#)]).await;
    let err = Client::new(&stub.url)
        .unwrap()
        .concurrency_limits()
        .create("t", 2)
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.api_error().unwrap().detail, "Not allowed");
    assert!(
        err.api_error().unwrap().path.ends_with("/concurrency_limits/"),
        "the rebuilt response keeps its URL"
    );
    assert_eq!(stub.requests().len(), 1);
}

/// A server that checks CSRF tokens the way Prefect does (one token per client; a new fetch
/// replaces it), can turn protection on later, and can forget its tokens (a restart).
struct TokenServer {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<TokenState>>,
}

#[derive(Default)]
struct TokenState {
    enabled: bool,
    current: Option<String>,
    fetches: usize,
    accepted: usize,
}

impl TokenServer {
    async fn start(enabled: bool) -> TokenServer {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let state = std::sync::Arc::new(std::sync::Mutex::new(TokenState {
            enabled,
            ..Default::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    while let Some(request) = common::stub::read_request(&mut socket).await {
                        let (status, body) = {
                            let mut s = state.lock().unwrap();
                            if request.path.starts_with("/api/csrf-token") {
                                if s.enabled {
                                    s.fetches += 1;
                                    let token = format!("t{}", s.fetches);
                                    s.current = Some(token.clone());
                                    let expires =
                                        (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
                                    (
                                        200,
                                        format!(
                                            r#"{{"token":"{token}","client":"c","expiration":"{expires}"}}"#
                                        ),
                                    )
                                } else {
                                    (422, r#"{"detail":"CSRF protection is disabled."}"#.to_string())
                                }
                            } else if s.enabled
                                && (s.current.is_none()
                                    || request.header("prefect-csrf-token") != s.current.as_deref())
                            {
                                (
                                    403,
                                    r#"{"detail":"Invalid CSRF token or client identifier."}"#.to_string(),
                                )
                            } else {
                                s.accepted += 1;
                                (201, r#"{"id":"5f5c3a8e-8a1e-4c1c-9a4e-0d3c1a2b3c4d","created":null,"updated":null,"tag":"t","concurrency_limit":2,"active_slots":[]}"#.to_string())
                            }
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n",
                            body.len()
                        );
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(body.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        TokenServer { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut TokenState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

#[tokio::test]
async fn requests_rejected_together_replace_the_token_once() {
    let server = TokenServer::start(true).await;
    let client = Client::new(&server.url).unwrap();
    client.concurrency_limits().create("t", 2).await.unwrap();
    assert_eq!(server.with(|s| s.fetches), 1);
    // The server forgets the client's token (a restart, a rotation): 32 changes at once.
    server.with(|s| s.current = None);
    let mut changes = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let client = client.clone();
        changes.spawn(async move { client.concurrency_limits().create("t", 2).await });
    }
    for result in changes.join_all().await {
        result.unwrap();
    }
    assert_eq!(
        server.with(|s| s.fetches),
        2,
        "one new token for all 32 rejected requests"
    );
    assert_eq!(server.with(|s| s.accepted), 33);
}

#[tokio::test]
async fn a_server_that_turns_protection_on_later_gets_tokens() {
    let server = TokenServer::start(false).await;
    let client = Client::new(&server.url).unwrap();
    client.concurrency_limits().create("t", 2).await.unwrap();
    assert_eq!(server.with(|s| s.fetches), 0, "protection off: no token");
    server.with(|s| s.enabled = true);
    client.concurrency_limits().create("t", 2).await.unwrap();
    client.concurrency_limits().create("t", 2).await.unwrap();
    assert_eq!(server.with(|s| s.fetches), 1);
    assert_eq!(server.with(|s| s.accepted), 3);
}
