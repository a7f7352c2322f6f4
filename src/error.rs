//! The one error type of the SDK: what went wrong, typed for callers to branch on, with a
//! message that says what to do.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// Everything a call to Prefect can fail with.
///
/// Branch on the variant (or the `is_*` helpers); show it with `Display`, which names the fix.
/// No variant ever holds an API key or auth string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was rejected before any request was sent.
    #[error("invalid {what}: {message}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A task's result record could not be read or written (its storage: a directory, for
    /// Prefect's default local storage).
    #[error(
        "{context}; check that the result storage is writable (PREFECT_RESULTS_LOCAL_STORAGE_PATH, PREFECT_HOME)"
    )]
    Io {
        /// What was being done, and where.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The client's settings are missing or wrong (API URL, key, profile, timeouts, TLS files):
    /// which setting, where its value came from, and the cause; nothing was sent.
    #[error(transparent)]
    Config(crate::config::ConfigError),

    /// The server answered its health check, but not healthy.
    #[error(
        "the Prefect server at {url} answers /health with false; check its logs (its database may be unreachable)"
    )]
    Unhealthy {
        /// The API URL asked.
        url: String,
    },

    /// The Tokio runtime running part of the call shut down before it finished.
    #[error("the Tokio runtime stopped while {what}; keep the runtime running until the call ends")]
    RuntimeShutdown {
        /// What was under way.
        what: &'static str,
    },

    /// A request hook of the generated client failed.
    #[error("a request hook failed: {0}")]
    Hook(String),

    /// 404: the object does not exist (or the URL is not Prefect's API).
    #[error("{}", not_found_message(.0))]
    NotFound(ApiError),

    /// 409: the object conflicts with an existing one (a duplicate name).
    #[error("{0}; an object with that name or key exists already: read or update it instead")]
    Conflict(ApiError),

    /// Several objects share a name that must find one (an automation's, for `apply` and
    /// `get_by_name`): nothing was written.
    #[error(
        "{count} {what}s are named {name:?} ({ids}); a name must find one: delete or rename all \
         but one of them, or address one by its id",
        count = ids.len(),
        ids = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousName {
        /// What kind of object.
        what: &'static str,
        /// The name they share.
        name: String,
        /// Their ids.
        ids: Vec<uuid::Uuid>,
    },

    /// 422: the server rejected the request's content.
    #[error("{error}{}; fix the request", FieldErrors(fields))]
    Validation {
        /// Status, path and the server's message.
        error: ApiError,
        /// Each rejected field with its location, as the server listed them.
        fields: Vec<FieldError>,
    },

    /// 401: the server needs credentials or rejected them.
    #[error(
        "{0}; set PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING (a self-hosted server \
         with basic auth) to valid credentials"
    )]
    Unauthorized(ApiError),

    /// 403: the credentials are valid but not allowed this operation or workspace.
    #[error("{0}; the API key has no access to this workspace or operation, check its role")]
    Forbidden(ApiError),

    /// 423: the concurrency slots asked for are taken; try again after `retry_after`.
    #[error("{error}: concurrency slots are taken{}", RetryAfter(*retry_after))]
    SlotsUnavailable {
        /// Status, path and the server's message.
        error: ApiError,
        /// The server's advice on when to try again.
        retry_after: Option<Duration>,
    },

    /// 429: the server asks the client to slow down.
    #[error("{error}: the server is rate-limiting this client{}", RetryAfter(*retry_after))]
    RateLimited {
        /// Status, path and the server's message.
        error: ApiError,
        /// The server's advice on when to try again.
        retry_after: Option<Duration>,
    },

    /// 5xx: the server (or a proxy in front of it) failed.
    #[error("{0}; the server or a proxy in front of it failed, check its logs and try again later")]
    Server(ApiError),

    /// Any other unsuccessful status.
    #[error("{0}")]
    Api(ApiError),

    /// The request did not complete in time.
    #[error(
        "request to {path} timed out; the server is slow or unreachable: check it, or raise \
         PREFECT_API_REQUEST_TIMEOUT / the client's timeout"
    )]
    Timeout {
        /// The API path (no host, no query).
        path: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server could not be reached, or the connection failed mid-request.
    #[error(
        "cannot reach the Prefect API at {url} (the connection was refused or not made within the \
         connect timeout); check PREFECT_API_URL and that the server is running (`prefect server \
         start`); nothing was sent"
    )]
    Connect {
        /// The base URL (no credentials).
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke after the request was sent, before the whole answer came: the
    /// server may have acted on it.
    #[error(
        "the connection to the Prefect API at {url} broke before the answer to {path} came; the \
         server may have acted on the request: check (e.g. read the object) before repeating a \
         create; if this persists, check the server and any proxy or load balancer in between"
    )]
    ConnectionLost {
        /// The base URL (no credentials).
        url: String,
        /// The request's path.
        path: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// A flow run did not reach a final state in the time given.
    #[error(
        "flow run {flow_run_id} is still {} after {waited:?}; wait longer, or check that a worker \
         polls its work pool (a scheduled run without a worker never starts)",
        state.as_deref().unwrap_or("without a state")
    )]
    WaitTimeout {
        /// The run waited for.
        flow_run_id: uuid::Uuid,
        /// How long it was waited for.
        waited: Duration,
        /// Its last state type.
        state: Option<String>,
    },

    /// The TLS handshake failed: what was wrong with the server's certificate (or the
    /// handshake), and what to do.
    #[error("TLS with the Prefect API at {url} failed: {problem}")]
    Tls {
        /// The base URL (no credentials).
        url: String,
        /// What failed.
        problem: TlsProblem,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server answered 2xx with a body that is not what the operation returns.
    #[error(
        "the server's answer to {operation} is not the expected JSON; body starts with \
         {excerpt:?}: check that PREFECT_API_URL is the Prefect API (it usually ends in /api) and \
         that the server runs a compatible Prefect 3.x"
    )]
    Decode {
        /// The operation (generated method name), when known.
        operation: String,
        /// The first bytes of the body.
        excerpt: String,
        /// What did not match.
        #[source]
        source: serde_json::Error,
    },

    /// A concurrency lease was lost: its slots may already be someone else's.
    #[error("concurrency lease {lease_id} was lost: {reason}; its slots may be held by others now")]
    LeaseLost {
        /// The lease.
        lease_id: uuid::Uuid,
        /// Why it counts as lost.
        reason: LeaseLoss,
    },

    /// The server has no such operation: it is older than the Prefect release that added it.
    #[error(
        "{error}: this Prefect server has no {operation}, which came in Prefect {since}; upgrade \
         the server to Prefect {since} or newer (this SDK is built for Prefect {built_for})",
        built_for = crate::PREFECT_VERSION
    )]
    ServerTooOld {
        /// Status (404 or 405), path and the server's message.
        error: ApiError,
        /// What is missing, e.g. "concurrency leases".
        operation: &'static str,
        /// The first Prefect release that has it.
        since: &'static str,
    },

    /// The slots were not free within the acquire timeout.
    #[error(
        "could not get {slots} slot(s) of {names:?} within {waited:?}: the limit stayed full; raise the \
         timeout or the limit, or look for holders that never release (read the limit's active_slots)"
    )]
    AcquireTimeout {
        /// The limits asked for.
        names: Vec<String>,
        /// Slots asked for on each.
        slots: u32,
        /// How long the acquisition waited.
        waited: Duration,
    },

    /// An acquisition (strict, the default) named limits that do not exist or are inactive.
    #[error(
        "no active global concurrency limit named {names:?}: check the name, create it with \
         client.global_concurrency_limits().create(name, limit) or activate it; or acquire with \
         .strict(false) to let names without a limit limit nothing"
    )]
    MissingLimits {
        /// The names with no active limit.
        names: Vec<String>,
    },

    /// A websocket (event or log subscription, event emitter) was closed by the server with
    /// 1008: missing or wrong credentials.
    #[error(
        "the Prefect server refused the websocket {path} (close code 1008: {detail}); set \
         PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING (a self-hosted server with \
         basic auth) to valid credentials"
    )]
    SocketUnauthorized {
        /// The websocket's API path.
        path: String,
        /// The server's close reason.
        detail: String,
    },

    /// A websocket was refused for what the client sent (close code 1002: an invalid filter or
    /// message) or the upgrade itself was not accepted.
    #[error(
        "the Prefect server refused the websocket {path} ({detail}); check the subscription's \
         filter, and that any proxy in front of Prefect passes websocket upgrades"
    )]
    SocketRejected {
        /// The websocket's API path.
        path: String,
        /// The close code and reason, or the HTTP status that answered the upgrade.
        detail: String,
    },

    /// A websocket broke, stalled or carried frames that are not Prefect's protocol.
    /// Subscriptions and the emitter reconnect on it; they return it (as the cause of
    /// [`Error::SocketLost`]) once reconnecting fails.
    #[error("the websocket {path} failed: {detail}; check the server and any proxy in between")]
    SocketClosed {
        /// The websocket's API path.
        path: String,
        /// What happened.
        detail: String,
    },

    /// A subscription or emitter gave up: reconnecting failed `attempts` times in a row.
    #[error(
        "the websocket {path} could not be reopened after {attempts} attempts; check that the \
         Prefect server is up and reachable, then subscribe again (the last attempt's error is \
         the source)"
    )]
    SocketLost {
        /// The websocket's API path.
        path: String,
        /// Reconnection attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<Error>,
    },

    /// Prefect aborted the orchestration of a flow or task run (ABORT): the run was deleted,
    /// or changed in a way that ends it.
    #[error("Prefect aborted run {run_id}: {reason}; check the run in the UI (it may have been deleted)")]
    RunAborted {
        /// The flow or task run.
        run_id: uuid::Uuid,
        /// The server's reason.
        reason: String,
    },

    /// Anything else the HTTP layer reported.
    #[error("the request failed in the HTTP client; see the cause")]
    Http(#[source] reqwest::Error),
}

/// Why a concurrency lease counts as lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// The server answered 410 to a renewal.
    #[error(
        "the server answered 410 to {path}: it expired, was revoked, or - with several server \
         replicas - the replica that answered does not share lease storage with the one that \
         granted it (configure PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect_redis.lease_storage)"
    )]
    Gone {
        /// The renewal's path.
        path: String,
    },
    /// Renewals failed until the lease may have expired.
    #[error(
        "it could not be renewed before it expired (last error: {last_error}): check the server and the network"
    )]
    NotRenewed {
        /// The last renewal's failure.
        last_error: String,
    },
    /// The Tokio runtime that renewed it shut down while the guard was held.
    #[error("the Tokio runtime renewing it shut down while the slots were held")]
    RuntimeShutdown,
}

/// What failed in a TLS handshake, from rustls' own error, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server's certificate is signed by a CA this client does not trust.
    #[error("{}", untrusted_issuer(.trusted))]
    UntrustedIssuer {
        /// The certificate file the client trusts besides the platform's roots, with where
        /// the setting came from (`PREFECT_API_SSL_CERT_FILE /etc/ca.pem, from the
        /// environment`), when one is set.
        trusted: Option<String>,
    },
    /// The certificate names other hosts than the URL's.
    #[error(
        "the server's certificate is not valid for the host of PREFECT_API_URL; use a host name \
         the certificate lists, or a certificate that lists this host"
    )]
    NameMismatch,
    /// The certificate has expired.
    #[error("the server's certificate has expired; renew it (or check this machine's clock)")]
    Expired,
    /// The certificate is not valid yet.
    #[error(
        "the server's certificate is not valid yet; check this machine's clock and the certificate's dates"
    )]
    NotYetValid,
    /// The certificate is a CA's (basic constraints CA:TRUE) that the client cannot use as a
    /// server's.
    #[error(
        "the server presents a CA certificate as its own (CA:TRUE, as `openssl req -x509` makes \
         by default) and it is not the one trusted; set PREFECT_API_SSL_CERT_FILE to a PEM file \
         holding exactly this certificate, or give the server a certificate signed by a CA"
    )]
    CaAsServerCertificate,
    /// The certificate was revoked.
    #[error("the server's certificate was revoked; the server needs a new certificate")]
    Revoked,
    /// The other side does not speak TLS on this port.
    #[error("the server did not answer in TLS; check the URL's scheme (http:// or https://) and port")]
    NotTls,
    /// Anything else rustls reported.
    #[error("{0}; check the server's TLS set-up, or PREFECT_API_SSL_CERT_FILE")]
    Other(String),
}

impl TlsProblem {
    /// Reads what rustls reported.
    pub(crate) fn of(error: &rustls::Error) -> TlsProblem {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                // A bad signature: a CA of the issuer's name is trusted, but not the one that
                // signed (another key): to the user, an issuer not trusted.
                C::UnknownIssuer | C::BadSignature => TlsProblem::UntrustedIssuer { trusted: None },
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::NameMismatch,
                C::Expired | C::ExpiredContext { .. } => TlsProblem::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsProblem::NotYetValid,
                C::Revoked => TlsProblem::Revoked,
                C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
                    TlsProblem::CaAsServerCertificate
                }
                other => TlsProblem::Other(format!("the server's certificate was refused: {other}")),
            },
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsProblem::NotTls
            }
            other => TlsProblem::Other(format!("the handshake failed: {other}")),
        }
    }
}

fn untrusted_issuer(trusted: &Option<String>) -> String {
    match trusted {
        Some(file) => format!(
            "the server's certificate is signed by a CA that neither the platform nor {file} \
             holds; put the CA that signed it (or the server's own certificate) in that file"
        ),
        None => "the server's certificate is signed by a CA this client does not trust; set \
                 PREFECT_API_SSL_CERT_FILE to a PEM file holding that CA (or the server's own \
                 certificate)"
            .to_string(),
    }
}

/// Turns a missing object into `None`, for any call:
/// `client.flows().get(id).await.optional()?`.
pub trait OptionalExt<T> {
    /// `Ok(None)` for [`Error::NotFound`] naming a missing object; every other error stays. A
    /// 404 for an unknown path (a wrong `PREFECT_API_URL`) stays an error.
    fn optional(self) -> Result<Option<T>, Error>;
}

impl<T> OptionalExt<T> for Result<T, Error> {
    fn optional(self) -> Result<Option<T>, Error> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::NotFound(error)) if !is_route_missing(&error) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A bare `Not Found` (or a page) means the path itself is unknown, not an object.
fn is_route_missing(error: &ApiError) -> bool {
    error.detail == "Not Found" || error.detail.starts_with('<')
}

/// An unsuccessful answer from the server: status, where, and Prefect's `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The API path of the request (no host, no query).
    pub path: String,
    /// Prefect's `detail` (or `exception_message`), or the start of a non-JSON body.
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefect answered {} to {}", self.status, self.path)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// One field the server rejected in a 422.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// Where the field is (`["body", "concurrency_limit"]`).
    #[serde(default, deserialize_with = "location")]
    pub loc: Vec<String>,
    /// What is wrong with it.
    #[serde(default)]
    pub msg: String,
    /// Pydantic's error type (`missing`, `int_parsing`, …).
    #[serde(default, rename = "type")]
    pub kind: String,
}

fn location<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let parts: Vec<serde_json::Value> = Deserialize::deserialize(d)?;
    Ok(parts
        .into_iter()
        .map(|p| match p {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
}

/// A 404 of Prefect's names the missing object; a bare `Not Found` (or a page) means the path
/// itself is unknown: the API URL is wrong.
fn not_found_message(error: &ApiError) -> String {
    if is_route_missing(error) {
        format!(
            "{error}; this path does not exist on the server: check that PREFECT_API_URL is the \
             Prefect API (it usually ends in /api, e.g. http://127.0.0.1:4200/api)"
        )
    } else {
        format!("{error}; check the id or name (the object may have been deleted)")
    }
}

struct FieldErrors<'a>(&'a [FieldError]);

impl fmt::Display for FieldErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.0.iter().enumerate() {
            let sep = if i == 0 { " (" } else { "; " };
            write!(f, "{sep}{}: {}", field.loc.join("."), field.msg)?;
        }
        if !self.0.is_empty() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

struct RetryAfter(Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, ", retry after {:.1} s", d.as_secs_f64()),
            None => Ok(()),
        }
    }
}

impl Error {
    /// The HTTP status of an unsuccessful answer, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.api_error().map(|e| e.status)
    }

    /// The server's answer, for errors that come from one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::NotFound(e)
            | Error::Conflict(e)
            | Error::Unauthorized(e)
            | Error::Forbidden(e)
            | Error::Server(e)
            | Error::Api(e)
            | Error::Validation { error: e, .. }
            | Error::SlotsUnavailable { error: e, .. }
            | Error::ServerTooOld { error: e, .. }
            | Error::RateLimited { error: e, .. } => Some(e),
            _ => None,
        }
    }

    /// The server's advice on when to try again (423, 429, 503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::SlotsUnavailable { retry_after, .. } | Error::RateLimited { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
    /// 409.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }
    /// Several objects share the name asked for ([`Error::AmbiguousName`]).
    pub fn is_ambiguous_name(&self) -> bool {
        matches!(self, Error::AmbiguousName { .. })
    }
    /// 422.
    pub fn is_validation(&self) -> bool {
        matches!(self, Error::Validation { .. })
    }
    /// 401 or 403.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Unauthorized(_) | Error::Forbidden(_) | Error::SocketUnauthorized { .. }
        )
    }
    /// 423: concurrency slots taken.
    pub fn is_slots_unavailable(&self) -> bool {
        matches!(self, Error::SlotsUnavailable { .. })
    }
    /// 5xx.
    pub fn is_server(&self) -> bool {
        matches!(self, Error::Server(_))
    }
    /// Timed out, any of three ways that each need their own fix: a request
    /// ([`is_request_timeout`](Self::is_request_timeout)), waiting for slots
    /// ([`is_acquire_timeout`](Self::is_acquire_timeout)), or waiting for a flow run
    /// ([`is_wait_timeout`](Self::is_wait_timeout)).
    pub fn is_timeout(&self) -> bool {
        self.is_request_timeout() || self.is_acquire_timeout() || self.is_wait_timeout()
    }
    /// A request did not complete within the request timeout ([`Error::Timeout`]): the server
    /// is slow or away.
    pub fn is_request_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }
    /// Slots were not free within the acquisition's timeout ([`Error::AcquireTimeout`]): the
    /// limit stayed full.
    pub fn is_acquire_timeout(&self) -> bool {
        matches!(self, Error::AcquireTimeout { .. })
    }
    /// A flow run did not reach the state waited for in time ([`Error::WaitTimeout`]).
    pub fn is_wait_timeout(&self) -> bool {
        matches!(self, Error::WaitTimeout { .. })
    }
    /// Could not connect ([`Error::Connect`], a refused connection or a connect timeout):
    /// nothing reached the server, so repeating the call is safe.
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }
    /// The connection broke after the request was sent ([`Error::ConnectionLost`]): the server
    /// may have acted on it; check before repeating a create.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::ConnectionLost { .. })
    }
    /// Strict acquisition named limits that do not exist.
    pub fn is_missing_limits(&self) -> bool {
        matches!(self, Error::MissingLimits { .. })
    }
    /// Rejected before anything was sent: bad input or configuration.
    pub fn is_client_side(&self) -> bool {
        matches!(self, Error::InvalidInput { .. } | Error::Config(_))
    }
    /// A lease was lost (expired or revoked) while its slots were held.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Error::LeaseLost { .. })
    }
    /// Worth trying again later: what the transport retries (429, 502–504, timeouts and
    /// connection failures), and 423 (slots taken).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::SlotsUnavailable { .. } | Error::RateLimited { .. } | Error::Timeout { .. } => true,
            Error::Connect { .. } | Error::ConnectionLost { .. } | Error::SocketClosed { .. } => true,
            Error::Server(e) => matches!(e.status.as_u16(), 502..=504),
            _ => false,
        }
    }

    /// Turns "no such route" (404 `Not Found`, or 405 where a newer path is shadowed by an
    /// older `{id}` route) into [`Error::ServerTooOld`]; other errors pass unchanged.
    pub(crate) fn if_route_missing(self, operation: &'static str, since: &'static str) -> Error {
        match self {
            Error::NotFound(error) if error.detail == "Not Found" => Error::ServerTooOld {
                error,
                operation,
                since,
            },
            Error::Api(error) if error.status == StatusCode::METHOD_NOT_ALLOWED => Error::ServerTooOld {
                error,
                operation,
                since,
            },
            other => other,
        }
    }

    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Error {
        Error::InvalidInput {
            what,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_shows_its_cause_once_in_a_chain() {
        let error = Error::Io {
            context: "writing the task's result record k".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "permission denied (os error 13)",
            ),
        };
        let shown = error.to_string();
        assert!(
            shown.starts_with("writing the task's result record k;"),
            "{shown}"
        );
        assert!(
            !shown.contains("os error 13"),
            "the cause is the source's: {shown}"
        );
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("permission denied (os error 13)"));
    }

    #[test]
    fn each_timeout_has_a_helper_of_its_own() {
        let acquire = Error::AcquireTimeout {
            names: vec!["db".into()],
            slots: 1,
            waited: Duration::from_secs(1),
        };
        let wait = Error::WaitTimeout {
            flow_run_id: uuid::Uuid::nil(),
            waited: Duration::from_secs(1),
            state: None,
        };
        assert!(acquire.is_timeout() && acquire.is_acquire_timeout());
        assert!(!acquire.is_wait_timeout() && !acquire.is_request_timeout());
        assert!(wait.is_timeout() && wait.is_wait_timeout() && !wait.is_acquire_timeout());
    }

    #[test]
    fn a_shared_name_says_how_many_share_it_and_what_to_do() {
        let error = Error::AmbiguousName {
            what: "automation",
            name: "nightly".into(),
            ids: vec![uuid::Uuid::nil(), uuid::Uuid::max()],
        };
        let text = error.to_string();
        assert!(
            text.starts_with("2 automations are named \"nightly\" (00000000-")
                && text.contains("ffffffff-ffff")
                && text.contains("delete or rename"),
            "{text}"
        );
        assert!(error.is_ambiguous_name() && !error.is_client_side() && !error.is_not_found());
    }
}
