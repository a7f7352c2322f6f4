//! CSRF tokens, the way Prefect's own client handles them, safe under concurrency.
//!
//! A server with `PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED=true` rejects state-changing
//! requests (POST, PUT, PATCH, DELETE) without a token. Before the first such request the client
//! asks `GET /csrf-token?client=<id>` for one and sends it as `Prefect-Csrf-Token` with
//! `Prefect-Csrf-Client`; it fetches a new one when it expires or the server answers 403
//! "Invalid CSRF token". A server without CSRF protection answers the token request with 422
//! (404 on older servers): the client then stops asking, until a request is rejected for its
//! token (the server turned protection on).
//!
//! The server keeps one token per client id, so each fetch invalidates the previous token:
//! requests rejected together refresh it once (single flight, by token generation), not once
//! each. A token request that fails transiently (a broken connection, a timeout, 429, 502–504)
//! is retried like any read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Request};
use uuid::Uuid;

use crate::retry::{Retries, Verdict, retry_after_of};
use crate::waits::CSRF_TOKEN;

const TOKEN_HEADER: HeaderName = HeaderName::from_static("prefect-csrf-token");
const CLIENT_HEADER: HeaderName = HeaderName::from_static("prefect-csrf-client");

/// The CSRF state one client and its clones share.
#[derive(Debug)]
pub(crate) struct Csrf {
    client_id: Uuid,
    /// The longest `Retry-After` waited on (the client's retry policy).
    max_retry_after: Duration,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// Not asked yet, or the last token request failed.
    Unknown,
    /// The server does not use CSRF tokens.
    Disabled,
    /// A token, when it expires, and which fetch it came from.
    Token {
        token: HeaderValue,
        expires: DateTime<Utc>,
        generation: u64,
    },
}

/// Which token a request carried: the one to replace if the server rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent(Option<u64>);

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: String,
    expiration: DateTime<Utc>,
}

impl Csrf {
    pub(crate) fn new(max_retry_after: Duration) -> Self {
        Csrf {
            client_id: Uuid::new_v4(),
            max_retry_after,
            state: tokio::sync::Mutex::new(State::Unknown),
        }
    }
}

/// Whether a request changes state (and so needs a token on a protected server).
pub(crate) fn is_change(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether a 403 body is the server's CSRF rejection.
pub(crate) fn is_csrf_rejection(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("Invalid CSRF token")
}

impl Csrf {
    /// Adds the token headers to a state-changing request, fetching a token first if there is
    /// none or it expired. Failing to get a token leaves the request as it is (the server's
    /// answer then says what is wrong).
    pub(crate) async fn add_headers(
        &self,
        http: &reqwest::Client,
        baseurl: &str,
        request: &mut Request,
    ) -> Sent {
        let mut state = self.state.lock().await;
        let usable = match &*state {
            State::Disabled => return Sent(None),
            State::Token { expires, .. } => *expires > Utc::now(),
            State::Unknown => false,
        };
        if !usable {
            *state = self.fetch(http, baseurl, request, next_generation(&state)).await;
        }
        self.insert(&state, request)
    }

    /// Replaces the token a rejected request carried and adds the new one to `request`. If
    /// another request replaced it meanwhile, that newer token is used: one fetch however many
    /// requests were rejected together. A server seen without CSRF is asked again: it rejected
    /// a token, so it has turned protection on.
    pub(crate) async fn replace(
        &self,
        http: &reqwest::Client,
        baseurl: &str,
        request: &mut Request,
        rejected: Sent,
    ) -> Sent {
        let mut state = self.state.lock().await;
        let current = match &*state {
            State::Token { generation, .. } => Some(*generation),
            _ => None,
        };
        if current.is_none() || current == rejected.0 {
            *state = self.fetch(http, baseurl, request, next_generation(&state)).await;
        }
        self.insert(&state, request)
    }

    fn insert(&self, state: &State, request: &mut Request) -> Sent {
        let State::Token {
            token, generation, ..
        } = state
        else {
            return Sent(None);
        };
        request.headers_mut().insert(TOKEN_HEADER, token.clone());
        if let Ok(client) = HeaderValue::from_str(&self.client_id.to_string()) {
            request.headers_mut().insert(CLIENT_HEADER, client);
        }
        Sent(Some(*generation))
    }

    /// Asks the server for a token, retrying transient failures.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        baseurl: &str,
        original: &Request,
        generation: u64,
    ) -> State {
        let mut token_request = http
            .get(format!("{baseurl}/csrf-token"))
            .query(&[("client", self.client_id)]);
        // The token request carries the same credentials and version header.
        for name in [
            reqwest::header::AUTHORIZATION,
            HeaderName::from_static("x-prefect-api-version"),
        ] {
            if let Some(value) = original.headers().get(&name) {
                token_request = token_request.header(name, value.clone());
            }
        }
        let token_request = &token_request;
        // A transient failure is `Err` with the server's `Retry-After`, if it gave one.
        let asked = Retries::new(CSRF_TOKEN)
            .run(
                |retry_after: &Option<Duration>| match retry_after.filter(|d| *d <= self.max_retry_after) {
                    Some(wait) => Verdict::RetryAfter(wait),
                    None => Verdict::Retry,
                },
                |_, _| {},
                |_| async move {
                    let Some(attempt) = token_request.try_clone() else {
                        return Ok(State::Unknown);
                    };
                    match attempt.send().await {
                        Ok(response) => {
                            let retry_after = retry_after_of(response.headers());
                            read_token(response, generation).await.map_err(|()| retry_after)
                        }
                        Err(e) => {
                            // A server that cannot be reached at all fails the request itself
                            // next, which the transport retries: asking for a token again would
                            // only double the wait.
                            let transient = !e.is_connect() && (e.is_timeout() || e.is_request());
                            tracing::debug!(error = %e.without_url(), "fetching a CSRF token failed");
                            if transient { Err(None) } else { Ok(State::Unknown) }
                        }
                    }
                },
            )
            .await;
        asked.unwrap_or(State::Unknown)
    }
}

fn next_generation(state: &State) -> u64 {
    match state {
        State::Token { generation, .. } => generation + 1,
        _ => 1,
    }
}

/// The state a token answer gives, or `Err` for an answer worth asking again.
async fn read_token(response: reqwest::Response, generation: u64) -> Result<State, ()> {
    match response.status().as_u16() {
        200 => Ok(match response.json::<TokenResponse>().await {
            Ok(token) => match HeaderValue::from_str(&token.token) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    State::Token {
                        token: value,
                        expires: token.expiration,
                        generation,
                    }
                }
                Err(_) => State::Unknown,
            },
            Err(_) => State::Unknown,
        }),
        // 422: CSRF protection is off; 404: a server without the endpoint.
        404 | 422 => Ok(State::Disabled),
        429 | 502..=504 => Err(()),
        _ => Ok(State::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_state_changes_need_tokens() {
        assert!(is_change(&Method::POST) && is_change(&Method::DELETE) && is_change(&Method::PATCH));
        assert!(!is_change(&Method::GET));
        assert!(is_csrf_rejection(
            br#"{"detail":"Invalid CSRF token or client identifier."}"#
        ));
        assert!(!is_csrf_rejection(br#"{"detail":"Forbidden"}"#));
    }
}
