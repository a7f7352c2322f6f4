//! TLS: the real server behind a loopback TLS terminator whose certificate a test CA signed.
//! Untrusted by default (a typed error naming PREFECT_API_SSL_CERT_FILE), trusted with the CA
//! file, and reachable with certificate checks skipped (with a logged warning).

mod common;

use std::io::Write;
use std::sync::Arc;

use common::{Captured, server, unique};
use prefect_client::{Client, Config, Error, TlsProblem};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer, pki_types::PrivatePkcs8KeyDer};

/// A TLS front for the shared real server; `ca_pem` is the CA that signed its certificate.
struct TlsFront {
    api_url: String,
    ca_pem: String,
}

async fn tls_front() -> TlsFront {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let port = serve_tls(server_cert.der().clone(), &server_key).await;
    TlsFront {
        api_url: format!("https://localhost:{port}/api"),
        ca_pem: ca.pem(),
    }
}

/// A self-signed certificate as `openssl req -x509` makes it by default: a CA (CA:TRUE) that
/// is its own issuer, for `names`; its PEM and the port of a TLS front presenting it.
async fn self_signed_front(names: &[&str]) -> (String, u16) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let port = serve_tls(cert.der().clone(), &key).await;
    (cert.pem(), port)
}

/// Terminates TLS with `cert` on a loopback port and forwards to the shared real server.
async fn serve_tls(cert: rustls::pki_types::CertificateDer<'static>, key: &KeyPair) -> u16 {
    let backend = server().await.port();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

fn pem_file(pem: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem.as_bytes()).unwrap();
    file
}

#[tokio::test]
async fn a_self_signed_server_certificate_given_as_trusted_is_accepted_for_http_and_websockets() {
    // `openssl req -x509` makes a CA:TRUE certificate; rustls alone refuses it as a server's
    // (CaUsedAsEndEntity), Prefect's Python client accepts it through the same proxy.
    let (pem, port) = self_signed_front(&["localhost", "127.0.0.1"]).await;
    let file = pem_file(&pem);
    let url = format!("https://localhost:{port}/api");
    let untrusted = Client::new(&url).unwrap().health().await.unwrap_err();
    assert!(
        matches!(&untrusted, Error::Tls { .. }),
        "without the file: {untrusted:?}"
    );
    let client = Client::builder(&url).ssl_cert_file(file.path()).build().unwrap();
    client.health().await.unwrap();
    // The websocket goes through the same verifier.
    let filter = prefect_client::types::EventFilter::default();
    let events = client.events().subscribe(filter).await;
    assert!(events.is_ok(), "{:?}", events.err());
    // The host name is still checked: a certificate for localhost only, reached by its address.
    let (pem, port) = self_signed_front(&["localhost"]).await;
    let file = pem_file(&pem);
    let other = Client::builder(&format!("https://127.0.0.1:{port}/api"))
        .ssl_cert_file(file.path())
        .build()
        .unwrap();
    let err = other.health().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Tls {
                problem: TlsProblem::NameMismatch,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("not valid for the host"), "{err}");
}

#[tokio::test]
async fn a_certificate_file_that_does_not_hold_the_servers_ca_says_so_and_where_it_was_set() {
    let front = tls_front().await;
    let (other_ca, _) = self_signed_front(&["elsewhere"]).await;
    let file = pem_file(&other_ca);
    let path = file.path().to_string_lossy().into_owned();
    let config = Config::from_lookup(|name| match name {
        "PREFECT_API_URL" => Some(front.api_url.clone()),
        "PREFECT_API_SSL_CERT_FILE" => Some(path.clone()),
        "PREFECT_HOME" => Some("/nonexistent".into()),
        _ => None,
    })
    .unwrap();
    let err = Client::from_config(config).unwrap().health().await.unwrap_err();
    let Error::Tls {
        problem: TlsProblem::UntrustedIssuer {
            trusted: Some(trusted),
        },
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        trusted.contains(&path) && trusted.contains("from the environment"),
        "{trusted}"
    );
    let message = err.to_string();
    assert!(
        !message.contains("set PREFECT_API_SSL_CERT_FILE"),
        "not told to set what is set: {message}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_naming_the_setting() {
    let front = tls_front().await;
    let client = Client::new(&front.api_url).unwrap();
    let before = client.requests_sent();
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("PREFECT_API_SSL_CERT_FILE"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    assert_eq!(
        client.requests_sent() - before,
        1,
        "a certificate problem is not retried"
    );
}

#[tokio::test]
async fn a_ca_file_makes_the_server_trusted() {
    let front = tls_front().await;
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    ca_file.write_all(front.ca_pem.as_bytes()).unwrap();
    let client = Client::builder(&front.api_url)
        .ssl_cert_file(ca_file.path())
        .build()
        .unwrap();
    client.health().await.unwrap();
    let tag = unique("tls");
    let created = client.concurrency_limits().create(&tag, 3).await.unwrap();
    assert_eq!(created.concurrency_limit, 3);
    client.concurrency_limits().delete_by_tag(&tag).await.unwrap();

    // The same through the environment, as Prefect's settings name it.
    let ca_path = ca_file.path().to_string_lossy().into_owned();
    let config = Config::from_lookup(|name| match name {
        "PREFECT_API_URL" => Some(front.api_url.clone()),
        "PREFECT_API_SSL_CERT_FILE" => Some(ca_path.clone()),
        "PREFECT_HOME" => Some("/nonexistent".into()),
        _ => None,
    })
    .unwrap();
    Client::from_config(config).unwrap().health().await.unwrap();
}

#[tokio::test]
async fn a_ca_file_that_is_not_pem_is_a_config_error() {
    let mut not_pem = tempfile::NamedTempFile::new().unwrap();
    not_pem.write_all(b"not a certificate").unwrap();
    let err = Client::builder("https://localhost:1/api")
        .ssl_cert_file(not_pem.path())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("PEM"), "{err}");
    let err = Client::builder("https://localhost:1/api")
        .ssl_cert_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("cannot be read"),
        "{err}"
    );
}

#[tokio::test]
async fn skipping_verification_connects_and_warns() {
    let front = tls_front().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let client = tracing::subscriber::with_default(subscriber, || {
        Client::builder(&front.api_url)
            .tls_insecure_skip_verify(true)
            .build()
            .unwrap()
    });
    client.health().await.unwrap();
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("WARN") && logged.contains("NOT verified"),
        "{logged}"
    );
}
