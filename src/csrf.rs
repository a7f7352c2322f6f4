//! CSRF tokens, the way Prefect's own client handles them.
//!
//! A server with `PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED=true` rejects state-changing
//! requests (POST, PUT, PATCH, DELETE) without a token. Before the first such request the client
//! asks `GET /csrf-token?client=<id>` for one and sends it as `Prefect-Csrf-Token` with
//! `Prefect-Csrf-Client`; it fetches a new one when it expires or the server answers 403
//! "Invalid CSRF token". A server without CSRF protection answers the token request with 422
//! (404 on older servers): the client then stops asking.

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Request};
use uuid::Uuid;

const TOKEN_HEADER: HeaderName = HeaderName::from_static("prefect-csrf-token");
const CLIENT_HEADER: HeaderName = HeaderName::from_static("prefect-csrf-client");

/// The CSRF state one client and its clones share.
#[derive(Debug)]
pub(crate) struct Csrf {
    client_id: Uuid,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// Not asked yet.
    Unknown,
    /// The server does not use CSRF tokens.
    Disabled,
    /// A token and when it expires.
    Token {
        token: HeaderValue,
        expires: DateTime<Utc>,
    },
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: String,
    expiration: DateTime<Utc>,
}

impl Default for Csrf {
    fn default() -> Self {
        Csrf {
            client_id: Uuid::new_v4(),
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
    /// none or it expired; `refresh` forces a new one. Failing to get a token leaves the request
    /// as it is (the server's answer then says what is wrong).
    pub(crate) async fn add_headers(
        &self,
        http: &reqwest::Client,
        baseurl: &str,
        request: &mut Request,
        refresh: bool,
    ) {
        let mut state = self.state.lock().await;
        let fresh = matches!(&*state, State::Token { expires, .. } if *expires > Utc::now());
        if matches!(*state, State::Disabled) {
            return;
        }
        if refresh || !fresh {
            *state = self.fetch(http, baseurl, request).await;
        }
        if let State::Token { token, .. } = &*state {
            request.headers_mut().insert(TOKEN_HEADER, token.clone());
            if let Ok(client) = HeaderValue::from_str(&self.client_id.to_string()) {
                request.headers_mut().insert(CLIENT_HEADER, client);
            }
        }
    }

    async fn fetch(&self, http: &reqwest::Client, baseurl: &str, original: &Request) -> State {
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
        let response = match token_request.send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e.without_url(), "fetching a CSRF token failed");
                return State::Unknown;
            }
        };
        let status = response.status().as_u16();
        match status {
            200 => match response.json::<TokenResponse>().await {
                Ok(token) => match HeaderValue::from_str(&token.token) {
                    Ok(mut value) => {
                        value.set_sensitive(true);
                        State::Token {
                            token: value,
                            expires: token.expiration,
                        }
                    }
                    Err(_) => State::Unknown,
                },
                Err(_) => State::Unknown,
            },
            // 422: CSRF protection is off; 404: a server without the endpoint.
            404 | 422 => State::Disabled,
            _ => State::Unknown,
        }
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
