//! Reading what went wrong: unsuccessful answers, transport failures and undecodable bodies
//! become typed [`Error`]s.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::error::{ApiError, Error, FieldError, TlsProblem};

/// The rustls error a connection failed with in the TLS handshake, if it did.
pub(crate) fn tls_failure(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // `io::Error::source` skips the error it wraps (itself maybe an io::Error): look inside.
        if let Some(inner) = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            cause = Some(inner);
            continue;
        }
        cause = c.source();
    }
    None
}

/// The longest body excerpt an error keeps.
const EXCERPT_CHARS: usize = 200;
/// The most of an error body read to find Prefect's detail.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The start of a body, as text, for messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_CHARS * 4)]);
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Prefect's error bodies: `{"detail": "..."}` or, for validation, `{"exception_message": ...,
/// "exception_detail": [...]}`; FastAPI's own `{"detail": [...]}` is accepted too, and the
/// template check's `{"error": {"line": ..., "message": ...}}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<TemplateError>,
    #[serde(default)]
    detail: Option<serde_json::Value>,
    #[serde(default)]
    exception_message: Option<String>,
    #[serde(default)]
    exception_detail: Option<Vec<FieldError>>,
}

/// What the server's template check (`POST /templates/validate`) finds wrong with a template.
#[derive(Deserialize)]
struct TemplateError {
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// Decodes an unsuccessful answer into the matching [`Error`].
pub(crate) fn from_status(
    status: StatusCode,
    path: String,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Error {
    let mut fields = Vec::new();
    let detail = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => {
            if let Some(list) = parsed.exception_detail {
                fields = list;
            }
            match parsed.detail {
                Some(serde_json::Value::String(s)) => s,
                Some(serde_json::Value::Array(items)) => {
                    if fields.is_empty() {
                        fields = serde_json::from_value(serde_json::Value::Array(items)).unwrap_or_default();
                    }
                    parsed.exception_message.unwrap_or_default()
                }
                Some(other) => other.to_string(),
                None => match (parsed.error, parsed.exception_message) {
                    (Some(TemplateError { line, message }), _) => {
                        let message = message.unwrap_or_default();
                        match line {
                            Some(line) => format!("line {line}: {message}"),
                            None => message,
                        }
                    }
                    (None, message) => message.unwrap_or_default(),
                },
            }
        }
        Err(_) => excerpt(body),
    };
    let error = ApiError { status, path, detail };
    match status.as_u16() {
        401 => Error::Unauthorized(error),
        403 => Error::Forbidden(error),
        404 => Error::NotFound(error),
        409 => Error::Conflict(error),
        422 => Error::Validation { error, fields },
        423 => Error::SlotsUnavailable { error, retry_after },
        429 => Error::RateLimited { error, retry_after },
        500..=599 => Error::Server(error),
        _ => Error::Api(error),
    }
}

impl Error {
    /// Turns an error of the generated client into a typed [`Error`], reading the body of an
    /// unsuccessful response for Prefect's detail.
    ///
    /// The wrapper does this for every call; use it when calling [`crate::Client::raw`] directly.
    pub async fn from_generated<E>(error: progenitor_client::Error<E>) -> Error {
        Self::from_generated_operation("the request", error).await
    }

    pub(crate) async fn from_generated_operation<E>(
        operation: &str,
        error: progenitor_client::Error<E>,
    ) -> Error {
        use progenitor_client::Error as G;
        match error {
            G::UnexpectedResponse(response) => Self::from_response(response).await,
            G::ErrorResponse(response) => Error::Api(ApiError {
                status: response.status(),
                path: String::new(),
                detail: String::new(),
            }),
            G::CommunicationError(e) | G::ResponseBodyError(e) | G::InvalidUpgrade(e) => {
                Self::from_reqwest(e)
            }
            G::InvalidResponsePayload(body, source) => Error::Decode {
                operation: operation.to_string(),
                excerpt: excerpt(&body),
                source,
            },
            G::InvalidRequest(message) => Error::InvalidInput {
                what: "request",
                message,
            },
            G::Custom(message) => Error::Hook(message),
        }
    }

    /// Reads an unsuccessful response (bounded) into a typed [`Error`].
    pub(crate) async fn from_response(mut response: reqwest::Response) -> Error {
        let status = response.status();
        let path = response.url().path().to_string();
        let retry_after = crate::retry::retry_after_of(response.headers());
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= ERROR_BODY_LIMIT {
                        break;
                    }
                }
                Ok(None) => break,
                // The status already says what happened; a broken error body only loses detail.
                Err(_) => break,
            }
        }
        from_status(status, path, retry_after, &body)
    }

    /// Classifies an HTTP-layer error; the URL (which could carry credentials) is dropped.
    pub(crate) fn from_reqwest(error: reqwest::Error) -> Error {
        let path = error.url().map(|u| u.path().to_string()).unwrap_or_default();
        let origin = error.url().map(origin_of).unwrap_or_default();
        let error = error.without_url();
        if let Some(tls) = tls_failure(&error) {
            Error::Tls {
                url: origin,
                problem: TlsProblem::of(tls),
                source: error,
            }
        } else if error.is_connect() {
            // Could not connect (refused, or the connect timeout passed): nothing reached the
            // server.
            Error::Connect {
                url: origin,
                source: error,
            }
        } else if error.is_timeout() {
            Error::Timeout { path, source: error }
        } else if error.is_request() || error.is_body() || error.is_decode() {
            // The connection broke while sending or reading.
            Error::ConnectionLost {
                url: origin,
                path,
                source: error,
            }
        } else {
            Error::Http(error)
        }
    }
}

impl Error {
    /// Adds what only the client knows: for a TLS failure, the certificate file it trusts and
    /// where that setting came from.
    pub(crate) fn in_client(mut self, config: &crate::Config) -> Error {
        if let Error::Tls {
            problem: TlsProblem::UntrustedIssuer { trusted },
            ..
        } = &mut self
            && let Some(path) = config.ssl_cert_file()
        {
            let origin = config.origin("PREFECT_API_SSL_CERT_FILE");
            *trusted = Some(format!(
                "PREFECT_API_SSL_CERT_FILE {} (from {origin})",
                path.display()
            ));
        }
        self
    }
}

/// `scheme://host:port` of a URL, without credentials or path.
pub(crate) fn origin_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// Converts the result of a generated call into the SDK's result, decoding errors.
pub(crate) async fn unwrap_response<T, E>(
    operation: &str,
    result: Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<E>>,
) -> Result<T, Error> {
    match result {
        Ok(value) => Ok(value.into_inner()),
        Err(e) => Err(Error::from_generated_operation(operation, e).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn prefect_validation_body_gives_field_locations() {
        let body = br#"{"exception_message":"Invalid request received.","exception_detail":[{"type":"int_parsing","loc":["body","concurrency_limit"],"msg":"Input should be a valid integer","input":"x"}],"request_body":{}}"#;
        let err = from_status(status(422), "/api/concurrency_limits/".into(), None, body);
        let Error::Validation { error, fields } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(error.detail, "Invalid request received.");
        assert_eq!(fields[0].loc, ["body", "concurrency_limit"]);
        assert_eq!(fields[0].kind, "int_parsing");
        let text = err.to_string();
        assert!(
            text.contains("body.concurrency_limit: Input should be a valid integer"),
            "{text}"
        );
    }

    #[test]
    fn the_template_check_s_finding_is_the_detail() {
        let body = br#"{"error":{"line":1,"message":"unexpected '}'","source":"{{ x }"}}"#;
        let err = from_status(status(422), "/api/templates/validate".into(), None, body);
        let Error::Validation { error, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(error.detail, "line 1: unexpected '}'");
    }

    #[test]
    fn a_missing_route_is_a_server_too_old_but_a_missing_object_is_not() {
        let route = |code, body: &[u8]| {
            from_status(status(code), "/api/v2/x".into(), None, body).if_route_missing("x", "3.4.9")
        };
        assert!(matches!(
            route(405, br#"{"detail":"Method Not Allowed"}"#),
            Error::ServerTooOld { .. }
        ));
        assert!(matches!(
            route(404, br#"{"detail":"Not Found"}"#),
            Error::ServerTooOld { .. }
        ));
        let object = route(404, br#"{"detail":"Concurrency limit not found"}"#);
        assert!(object.is_not_found(), "{object:?}");
        assert_eq!(route(405, b"").status(), Some(status(405)));
        let text = route(405, br#"{"detail":"Method Not Allowed"}"#).to_string();
        assert!(
            text.contains("upgrade the server to Prefect 3.4.9 or newer"),
            "{text}"
        );
    }

    #[test]
    fn detail_string_and_fastapi_lists_are_read() {
        let err = from_status(
            status(422),
            "/p".into(),
            None,
            br#"{"detail":"Slots requested is greater than the limit"}"#,
        );
        assert_eq!(
            err.api_error().unwrap().detail,
            "Slots requested is greater than the limit"
        );
        let err = from_status(
            status(422),
            "/p".into(),
            None,
            br#"{"detail":[{"loc":["query",1],"msg":"bad","type":"x"}]}"#,
        );
        let Error::Validation { fields, .. } = err else {
            panic!()
        };
        assert_eq!(fields[0].loc, ["query", "1"]);
    }

    #[test]
    fn statuses_map_to_variants() {
        let cases = [
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (409, "Conflict"),
            (423, "SlotsUnavailable"),
            (429, "RateLimited"),
            (500, "Server"),
            (503, "Server"),
            (418, "Api"),
        ];
        for (code, variant) in cases {
            let err = from_status(status(code), "/x".into(), None, b"{\"detail\":\"d\"}");
            assert!(format!("{err:?}").starts_with(variant), "{code} -> {err:?}");
            assert_eq!(err.status(), Some(status(code)));
        }
    }

    #[test]
    fn route_misses_point_at_the_api_url() {
        let route = from_status(
            status(404),
            "/admin/version".into(),
            None,
            br#"{"detail":"Not Found"}"#,
        );
        assert!(route.to_string().contains("PREFECT_API_URL"), "{route}");
        let object = from_status(
            status(404),
            "/x".into(),
            None,
            br#"{"detail":"Concurrency limit not found"}"#,
        );
        assert!(object.to_string().contains("check the id or name"), "{object}");
        assert!(route.is_not_found() && object.is_not_found());
    }

    #[test]
    fn html_error_pages_keep_a_short_excerpt() {
        let page = format!("<html><body>{}</body></html>", "x".repeat(5000));
        let err = from_status(status(502), "/api/x".into(), None, page.as_bytes());
        let detail = &err.api_error().unwrap().detail;
        assert!(
            detail.starts_with("<html>") && detail.chars().count() <= EXCERPT_CHARS + 1,
            "{detail}"
        );
        assert!(err.is_transient());
        assert!(err.to_string().contains("check its logs"));
    }

    #[test]
    fn slots_unavailable_message_has_retry_after() {
        let err = from_status(
            status(423),
            "/api/v2/x".into(),
            Some(Duration::from_millis(2588)),
            br#"{"detail":"Locked"}"#,
        );
        assert_eq!(err.retry_after(), Some(Duration::from_millis(2588)));
        assert!(err.to_string().contains("retry after 2.6 s"), "{err}");
    }

    #[test]
    fn excerpt_is_char_safe() {
        let text = "é".repeat(300);
        assert_eq!(excerpt(text.as_bytes()).chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"  short  "), "short");
    }
}
