//! The one place every request passes through: the generated client's
//! `ClientHooks::exec`. It adds Prefect's headers and credentials, opens a tracing span per
//! request, and retries what is safe to retry.
//!
//! # Retries
//! A request is retried as the client's [`RetryPolicy`] says (by default up to 5 times with
//! exponential backoff and jitter, or the server's `Retry-After` when it gives one of at most
//! 30 s), when:
//! - the connection could not be made: nothing reached the server, any operation is retried;
//! - the server answered 429 or 503 (or a code in `PREFECT_CLIENT_RETRY_EXTRA_CODES`): it
//!   refused the request without acting on it, any operation is retried;
//! - the answer was 502 or 504, or the connection broke after the request was sent: the
//!   server may have acted, so only operations that are safe to repeat are retried (reads,
//!   filters, deletes, renewals, releases and Prefect's upserts: the reviewed table in
//!   `src/retry.rs`, which a test checks against every operation of openapi.yaml); for the
//!   others (creating a flow run, a v2 limit, a work pool, an artifact, logs, taking slots)
//!   the error is returned, so nothing is created twice.
//!
//! A request that stalls past the request timeout (a hung replica or connection) is retried
//! once if it is safe to repeat, never for other operations; a second timeout ends in
//! [`Error::Timeout`](crate::Error::Timeout), so every call ends within about twice the timeout
//! plus the backoff. A TLS failure (an untrusted certificate) is never retried.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use progenitor_client::{ClientHooks, OperationInfo};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use tracing::Instrument;

use crate::config::Config;
use crate::csrf::{Csrf, is_change, is_csrf_rejection};
use crate::error::Error;
use crate::retry::{Retries, RetryPolicy, Verdict, is_repeatable, retry_after_of};

/// The Prefect API version the client speaks (what Prefect's own client sends).
pub const PREFECT_API_VERSION: &str = "0.8.4";
/// The header carrying the API version.
const API_VERSION_HEADER: HeaderName = HeaderName::from_static("x-prefect-api-version");
/// The header progenitor adds with the document's version; Prefect does not read it.
const PROGENITOR_VERSION_HEADER: &str = "api-version";

/// Per-client state the generated client carries: credentials, headers and retry policy.
#[derive(Clone)]
pub struct Transport {
    authorization: Option<HeaderValue>,
    api_version: HeaderValue,
    retry: RetryPolicy,
    /// HTTP requests sent, retries included.
    pub(crate) requests_sent: Arc<AtomicU64>,
    /// `None` when CSRF support is turned off.
    csrf: Option<Arc<Csrf>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[REDACTED]"),
            )
            .field("retry", &self.retry)
            .finish()
    }
}

impl Transport {
    /// Precomputes the headers from the settings; a key that cannot be a header is an error.
    pub(crate) fn new(config: &Config) -> Result<Transport, Error> {
        use base64::Engine;
        use secrecy::ExposeSecret;
        let authorization = if let Some(key) = &config.api_key {
            Some(sensitive_header(
                &format!("Bearer {}", key.expose_secret()),
                config,
                "PREFECT_API_KEY",
            )?)
        } else if let Some(auth) = &config.auth_string {
            let token = base64::engine::general_purpose::STANDARD.encode(auth.expose_secret());
            Some(sensitive_header(
                &format!("Basic {token}"),
                config,
                "PREFECT_API_AUTH_STRING",
            )?)
        } else {
            None
        };
        Ok(Transport {
            authorization,
            api_version: HeaderValue::from_static(PREFECT_API_VERSION),
            retry: config.retry.clone(),
            requests_sent: Arc::new(AtomicU64::new(0)),
            csrf: config
                .csrf_support
                .then(|| Arc::new(Csrf::new(config.retry.max_retry_after()))),
        })
    }

    /// The `Authorization` header every request carries, if credentials are set.
    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    fn decorate(&self, request: &mut Request) {
        let headers = request.headers_mut();
        headers.remove(PROGENITOR_VERSION_HEADER);
        headers.insert(API_VERSION_HEADER, self.api_version.clone());
        // Also through a caller's own HTTP client: the server reads the client's release from
        // it (see `http_client::user_agent`).
        headers.insert(
            reqwest::header::USER_AGENT,
            crate::http_client::USER_AGENT.clone(),
        );
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
    }

    /// Sends `request`, retrying per the policy above, inside one tracing span. The loop is the
    /// engine of the user's [`RetryPolicy`]: it stays its own because between tries it renews a
    /// rejected CSRF token (a try that does not count) and sends a fresh copy of the request;
    /// the count, the pauses and the server's `Retry-After` go through the one
    /// [`Retries`](crate::retry::Retries) every other retry uses.
    async fn execute(
        &self,
        client: &reqwest::Client,
        baseurl: &str,
        mut request: Request,
        operation: &str,
    ) -> reqwest::Result<Response> {
        self.decorate(&mut request);
        let change = is_change(request.method());
        let mut token = match (change, &self.csrf) {
            (true, Some(csrf)) => Some(csrf.add_headers(client, baseurl, &mut request).await),
            _ => None,
        };
        let span = tracing::debug_span!(
            "prefect.request",
            operation,
            method = %request.method(),
            path = request.url().path(),
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let repeatable = is_repeatable(operation);
        async move {
            let started = Instant::now();
            let mut retries = Retries::new(self.retry.backoff());
            let mut attempts = 1u32;
            let mut timed_out = false;
            let mut csrf_refreshed = false;
            loop {
                let copy = request.try_clone();
                self.requests_sent.fetch_add(1, Ordering::Relaxed);
                let mut result = client.execute(request).await;
                if change
                    && self.csrf.is_some()
                    && !csrf_refreshed
                    && matches!(&result, Ok(r) if r.status() == StatusCode::FORBIDDEN)
                {
                    let (rejected, response) = inspect_forbidden(result?).await?;
                    result = Ok(response);
                    if let (true, Some(mut copy)) = (rejected, copy.as_ref().and_then(Request::try_clone)) {
                        // The token expired or the server restarted: replace it (once for every
                        // request it was rejected for), try again.
                        csrf_refreshed = true;
                        if let (Some(csrf), Some(sent)) = (&self.csrf, token) {
                            token = Some(csrf.replace(client, baseurl, &mut copy, sent).await);
                        }
                        request = copy;
                        attempts += 1;
                        continue;
                    }
                }
                let retry = self.retry_decision(&result, repeatable, repeatable && !timed_out);
                timed_out |= matches!(&result, Err(e) if e.is_timeout());
                let next = match (retry, copy) {
                    (Some(after), Some(copy)) => retries
                        .failed(after.map_or(Verdict::Retry, Verdict::RetryAfter))
                        .map(|wait| (wait, copy)),
                    _ => None,
                };
                let Some((wait, copy)) = next else {
                    let span = tracing::Span::current();
                    if let Ok(response) = &result {
                        span.record("status", response.status().as_u16());
                    }
                    span.record("attempts", attempts);
                    span.record("duration_ms", started.elapsed().as_millis() as u64);
                    return result;
                };
                tracing::debug!(
                    attempt = attempts,
                    wait_ms = wait.as_millis() as u64,
                    outcome = %describe(&result),
                    "retrying Prefect request"
                );
                drop(result);
                tokio::time::sleep(wait).await;
                request = copy;
                attempts += 1;
            }
        }
        .instrument(span)
        .await
    }

    /// `Some(retry_after)` when the outcome may be retried.
    fn retry_decision(
        &self,
        result: &reqwest::Result<Response>,
        repeatable: bool,
        retry_timeout: bool,
    ) -> Option<Option<Duration>> {
        match result {
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after_of(response.headers());
                if retry_after.is_some_and(|d| d > self.retry.max_retry_after()) {
                    return None;
                }
                let refused = status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE
                    || self.retry.extra_codes().contains(&status.as_u16());
                let maybe_acted = matches!(status.as_u16(), 502 | 504);
                (refused || (maybe_acted && repeatable)).then_some(retry_after)
            }
            Err(e) if crate::response::tls_failure(e).is_some() => None,
            // Nothing reached the server (refused, or the connect timeout passed): any
            // operation may be sent again.
            Err(e) if e.is_connect() => Some(None),
            Err(e) if e.is_timeout() => retry_timeout.then_some(None),
            Err(e) if e.is_request() || e.is_body() => repeatable.then_some(None),
            Err(_) => None,
        }
    }
}

/// Reads a 403's body to tell a CSRF rejection from any other, and rebuilds the response so the
/// caller still gets it whole.
async fn inspect_forbidden(response: Response) -> reqwest::Result<(bool, Response)> {
    use reqwest::ResponseBuilderExt;
    let (status, version, headers, url) = (
        response.status(),
        response.version(),
        response.headers().clone(),
        response.url().clone(),
    );
    let body = response.bytes().await?;
    let rejected = is_csrf_rejection(&body);
    let mut rebuilt = http::Response::new(reqwest::Body::from(body));
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        rebuilt
            .extensions_mut()
            .extend(with_url.into_parts().0.extensions);
    }
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok((rejected, Response::from(rebuilt)))
}

fn describe(result: &reqwest::Result<Response>) -> String {
    match result {
        Ok(response) => response.status().to_string(),
        Err(e) => e.to_string(),
    }
}

fn sensitive_header(value: &str, config: &Config, setting: &'static str) -> Result<HeaderValue, Error> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        config.setting_error(
            setting,
            "contains characters that cannot be sent in an HTTP header (a newline or control \
             character?); copy the value again",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

impl ClientHooks<Transport> for crate::generated::Client {
    async fn exec(&self, request: Request, info: &OperationInfo) -> reqwest::Result<Response> {
        self.inner
            .execute(&self.client, &self.baseurl, request, info.operation_id)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_bearer_or_basic_and_hidden() {
        let config = Config::new("http://h:1/api").unwrap().with_api_key("pnu_k");
        let t = Transport::new(&config).unwrap();
        assert_eq!(t.authorization.as_ref().unwrap(), "Bearer pnu_k");
        assert!(t.authorization.as_ref().unwrap().is_sensitive());
        assert!(!format!("{t:?}").contains("pnu_k"));
        let config = Config::new("http://h:1/api")
            .unwrap()
            .with_auth_string("admin:pass");
        let t = Transport::new(&config).unwrap();
        assert_eq!(t.authorization.as_ref().unwrap(), "Basic YWRtaW46cGFzcw==");
    }

    #[test]
    fn keys_with_newlines_are_a_config_error_without_the_key() {
        let config = Config::new("http://h:1/api")
            .unwrap()
            .with_api_key("abc\nsecretpart");
        let err = Transport::new(&config).unwrap_err();
        assert!(err.to_string().contains("PREFECT_API_KEY") && !err.to_string().contains("secretpart"));
    }
}
