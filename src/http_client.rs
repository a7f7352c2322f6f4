//! The HTTP client the SDK builds when the caller brings none: TLS provider, timeouts,
//! connection pool and certificates from [`Config`].

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::{Config, ConfigError};
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

/// The setting naming the extra certificates.
const SSL_CERT_FILE: &str = "PREFECT_API_SSL_CERT_FILE";

/// The User-Agent every request carries: Prefect's own form, `prefect/<version> (API
/// <api version>)`, with this SDK named in the version's local part (`3.8.8+rs.0.1.0`). The
/// server reads the client's version from it (`server/api/dependencies.py`): for a client it
/// cannot read, or one older than 3.4.11, it revokes a deployment run's concurrency lease at
/// RUNNING and holds the slot without a lease until the run ends, so a process that dies keeps
/// it. This SDK renews that lease as Prefect's own engine does.
pub(crate) fn user_agent() -> String {
    USER_AGENT.to_str().unwrap_or_default().to_string()
}

/// [`user_agent`] as a header value, made once.
pub(crate) static USER_AGENT: std::sync::LazyLock<reqwest::header::HeaderValue> =
    std::sync::LazyLock::new(|| {
        reqwest::header::HeaderValue::from_str(&user_agent_text())
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("prefect"))
    });

fn user_agent_text() -> String {
    format!(
        "prefect/{}+rs.{} (API {})",
        crate::PREFECT_VERSION,
        env!("CARGO_PKG_VERSION"),
        crate::PREFECT_API_VERSION
    )
}

/// Builds the HTTP client the SDK uses when the caller brings none: rustls (ring), the
/// configured timeouts, User-Agent, extra certificates and certificate checking.
pub(crate) fn build_http_client(config: &Config) -> Result<reqwest::Client, Error> {
    let builder = reqwest::Client::builder().timeout(config.request_timeout);
    let http2 = offers_http2(config);
    if config.enable_http2 && !http2 {
        tracing::warn!(
            "PREFECT_API_ENABLE_HTTP2 is set, but prefect-client was built without its `http2` feature: \
             using HTTP/1.1 (enable the feature to offer HTTP/2)"
        );
    }
    if http2 {
        build(config, builder, &["h2", "http/1.1"])
    } else {
        build(config, builder.http1_only(), &["http/1.1"])
    }
}

/// Whether the SDK's client offers HTTP/2: `PREFECT_API_ENABLE_HTTP2` (off by default, as in
/// Prefect's client) in a build with the `http2` feature.
fn offers_http2(config: &Config) -> bool {
    cfg!(feature = "http2") && config.enable_http2
}

/// Builds the client that opens websockets: the same TLS, certificates and connect timeout,
/// HTTP/1.1 only (a websocket is an HTTP/1.1 upgrade; an HTTP/2 connection cannot carry one)
/// and no whole-request timeout (a subscription lasts as long as its caller wants; the socket
/// layer bounds the handshake and detects stalls itself).
pub(crate) fn build_socket_http_client(config: &Config) -> Result<reqwest::Client, Error> {
    build(config, reqwest::Client::builder().http1_only(), &["http/1.1"])
}

fn build(config: &Config, builder: reqwest::ClientBuilder, alpn: &[&str]) -> Result<reqwest::Client, Error> {
    install_tls_provider();
    let mut builder = builder
        .connect_timeout(config.connect_timeout)
        .user_agent(user_agent())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_nodelay(true);
    if config.tls_insecure_skip_verify {
        tracing::warn!(
            "PREFECT_API_TLS_INSECURE_SKIP_VERIFY is set: TLS certificates are NOT verified; anyone on the \
             network path can read and change the traffic, including the API key"
        );
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(path) = &config.ssl_cert_file {
        let certs = read_certificates(config, path)?;
        builder = builder.tls_backend_preconfigured(tls_config(config, certs, alpn)?);
    }
    builder
        .build()
        .map_err(|e| Error::from(ConfigError::other("cannot build the HTTP client").caused_by(e)))
}

/// The certificates of the PEM file `path`.
fn read_certificates(config: &Config, path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|e| {
        config
            .setting_error(
                SSL_CERT_FILE,
                format!(
                    "is {}, which cannot be read; point it at a PEM file of CA certificates",
                    path.display()
                ),
            )
            .caused_by(e)
    })?;
    let no_pem = || {
        config.setting_error(
            SSL_CERT_FILE,
            format!(
                "is {}, which holds no PEM certificates; point it at a PEM file (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        )
    };
    let mut ders = Vec::new();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        ders.push(cert.map_err(|e| no_pem().caused_by(e))?);
    }
    if ders.is_empty() {
        return Err(no_pem().into());
    }
    Ok(ders)
}

/// rustls settings trusting the platform's roots, the certificates of the file as CAs, and a
/// server certificate that is exactly one of them (a self-signed certificate, which the
/// platform's rules refuse as a CA used as an end entity; OpenSSL and so Prefect's Python client
/// accept it).
fn tls_config(
    config: &Config,
    certs: Vec<CertificateDer<'static>>,
    alpn: &[&str],
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |e: rustls::Error| {
        Error::from(
            config
                .setting_error(
                    SSL_CERT_FILE,
                    "holds a certificate rustls cannot use as a trust anchor; check the file",
                )
                .caused_by(e),
        )
    };
    let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
        .map_err(unusable)?;
    let verifier = TrustedServerCertificates {
        platform,
        pinned: certs,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(tls)
}

/// The platform's verification, and beside it: a server certificate byte-for-byte equal to one
/// the user trusts is accepted if it is within its validity period and names the host.
#[derive(Debug)]
struct TrustedServerCertificates {
    platform: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl TrustedServerCertificates {
    /// Checks a server certificate the user trusts as it is: dates and host name.
    fn check_pinned(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let anchor = webpki::anchor_from_trusted_cert(end_entity).map_err(pki_error)?;
        // Checked before anything else: a path to itself fails only after its dates were
        // found good, for being a CA (or an end entity) anchored in itself.
        match cert.verify_for_usage(
            self.algorithms.all,
            &[anchor],
            &[],
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        ) {
            Ok(_) | Err(webpki::Error::CaUsedAsEndEntity) => {}
            Err(e) => return Err(pki_error(e)),
        }
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(pki_error)
    }
}

fn pki_error(error: webpki::Error) -> rustls::Error {
    use rustls::CertificateError as C;
    rustls::Error::InvalidCertificate(match error {
        webpki::Error::CertExpired { .. } => C::Expired,
        webpki::Error::CertNotValidYet { .. } => C::NotValidYet,
        webpki::Error::CertNotValidForName(_) => C::NotValidForName,
        webpki::Error::BadDer | webpki::Error::BadDerTime => C::BadEncoding,
        other => C::Other(rustls::OtherError(Arc::new(other))),
    })
}

impl ServerCertVerifier for TrustedServerCertificates {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .platform
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(verified) => Ok(verified),
            Err(_) if self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                self.check_pinned(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_is_offered_only_when_enabled_in_a_build_with_the_feature() {
        let config = Config::new("https://prefect.example/api").unwrap();
        assert!(!offers_http2(&config));
        assert_eq!(offers_http2(&config.with_http2(true)), cfg!(feature = "http2"));
    }
}
