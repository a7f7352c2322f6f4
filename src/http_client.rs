//! The HTTP client the SDK builds when the caller brings none: TLS provider, timeouts,
//! connection pool and certificates from [`Config`].

use std::time::Duration;

use crate::config::Config;
use crate::error::Error;

/// Installs rustls' `ring` crypto provider for the process, unless one is installed already.
///
/// The SDK does this before building its own HTTP client. Call it before building a
/// `reqwest::Client` of your own for [`ClientBuilder::http_client`](crate::ClientBuilder::http_client)
/// when your reqwest has no TLS backend feature of its own (with reqwest's default features it
/// has one).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long an idle connection is kept for reuse: under the 5 s after which Prefect's server
/// (uvicorn, `PREFECT_SERVER_API_KEEPALIVE_TIMEOUT`) closes idle connections. A request sent on
/// a connection as the server closes it is lost, and one that is not safe to repeat (a create,
/// taking slots) would fail as [`Error::ConnectionLost`]. Prefect's Python client (httpx) keeps
/// idle connections 5 s.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Builds the HTTP client the SDK uses when the caller brings none: rustls (ring), the
/// configured timeouts, User-Agent, extra CA certificate and certificate checking.
pub(crate) fn build_http_client(config: &Config) -> Result<reqwest::Client, Error> {
    builder(config, reqwest::Client::builder().timeout(config.request_timeout))
}

/// Builds the client that opens websockets: the same TLS, certificates and connect timeout,
/// HTTP/1.1 only (a websocket is an HTTP/1.1 upgrade; an HTTP/2 connection cannot carry one)
/// and no whole-request timeout (a subscription lasts as long as its caller wants; the socket
/// layer bounds the handshake and detects stalls itself).
pub(crate) fn build_socket_http_client(config: &Config) -> Result<reqwest::Client, Error> {
    builder(config, reqwest::Client::builder().http1_only())
}

fn builder(config: &Config, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, Error> {
    install_tls_provider();
    let mut builder = builder
        .connect_timeout(config.connect_timeout)
        .user_agent(concat!("prefect-client-rust/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true);
    if let Some(path) = &config.ssl_cert_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "PREFECT_API_SSL_CERT_FILE {} cannot be read ({e}); point it at a PEM file of CA certificates",
                path.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::Config(format!(
                "PREFECT_API_SSL_CERT_FILE {} holds no PEM certificates ({e}); point it at a PEM file",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "PREFECT_API_SSL_CERT_FILE {} holds no PEM certificates; point it at a PEM file",
                path.display()
            )));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if config.tls_insecure_skip_verify {
        tracing::warn!(
            "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is set: TLS certificates are NOT verified; anyone on the \
             network path can read and change the traffic, including the API key"
        );
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}
