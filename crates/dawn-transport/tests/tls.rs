//! Peers that do not speak raw public keys are refused during the handshake, in both
//! directions, and a Dawn server speaks only TLS 1.3 with ALPN `dawn/1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dawn_crypto::SigningKey;
use dawn_transport::{
    ALPN, AcceptError, ConnectError, Transport, TransportConfig, TransportEvent,
    quic_client_config, quic_server_config,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A classic X.509 client: no client certificate, trusts anything, knows nothing of raw keys.
#[derive(Debug)]
struct TrustAnything;

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// A server presenting an (unparsed) X.509 certificate for an Ed25519 key.
#[derive(Debug)]
struct X509Resolver(Arc<CertifiedKey>);

impl ResolvesServerCert for X509Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn ed25519_certified(seed: [u8; 32], cert: Vec<u8>) -> CertifiedKey {
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    let key = rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8)).unwrap();
    CertifiedKey::new(vec![CertificateDer::from(cert)], key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_raw_public_keys_is_refused() {
    let server = Transport::bind(
        SigningKey::generate().unwrap(),
        loopback(),
        TransportConfig::default(),
    )
    .unwrap();
    let mut events = server.subscribe();

    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(TrustAnything))
    .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let result = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            server.local_addr().unwrap(),
            "dawn",
        )
        .unwrap()
        .await;
    assert!(result.is_err(), "an X.509-only client must not get in");

    let failure = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(TransportEvent::InboundFailed { error, .. }) = events.recv().await {
                return error;
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(failure, AcceptError::Handshake(_)), "{failure:?}");
    assert!(server.connections().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_presenting_x509_is_refused() {
    let server_key = SigningKey::generate().unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(X509Resolver(Arc::new(ed25519_certified(
        *server_key.to_bytes(),
        // Any DER: a raw-key client must never get as far as parsing it.
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
    )))));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(crypto)),
        loopback(),
    )
    .unwrap();
    let server_addr = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let _ = incoming.await;
        }
    });

    let client = Transport::bind(
        SigningKey::generate().unwrap(),
        loopback(),
        TransportConfig::default(),
    )
    .unwrap();
    let error = client
        .connect(server_key.verifying_key().into(), &[server_addr])
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Handshake(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_quinn_with_dawn_tls_authenticates_like_the_transport() {
    // The public TLS configurations are what the transport uses: a bare quinn pair built from
    // them handshakes, and the client refuses a server key it did not ask for.
    let server_key = SigningKey::generate().unwrap();
    let client_key = SigningKey::generate().unwrap();
    let endpoint = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic_server_config(&server_key).unwrap())),
        loopback(),
    )
    .unwrap();
    let server_addr = endpoint.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let Ok(connection) = incoming.await else {
                continue;
            };
            let certs = connection
                .peer_identity()
                .unwrap()
                .downcast::<Vec<CertificateDer<'static>>>()
                .unwrap();
            let alpn = connection
                .handshake_data()
                .unwrap()
                .downcast::<quinn::crypto::rustls::HandshakeData>()
                .unwrap()
                .protocol
                .unwrap();
            seen_tx.send((certs.to_vec(), alpn)).unwrap();
        }
    });

    let client = quinn::Endpoint::client(loopback()).unwrap();
    let good = quic_client_config(&client_key, server_key.verifying_key().into()).unwrap();
    let connection = client
        .connect_with(
            quinn::ClientConfig::new(Arc::new(good)),
            server_addr,
            "dawn",
        )
        .unwrap()
        .await
        .unwrap();
    let (certs, alpn) = tokio::time::timeout(WAIT, seen_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // The client's "certificate" is its bare Ed25519 SubjectPublicKeyInfo.
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].len(), 44);
    assert_eq!(&certs[0][12..], client_key.verifying_key().as_bytes());
    assert_eq!(alpn, ALPN);
    connection.close(0u32.into(), b"");

    let wrong = quic_client_config(
        &client_key,
        SigningKey::generate().unwrap().verifying_key().into(),
    )
    .unwrap();
    let result = client
        .connect_with(
            quinn::ClientConfig::new(Arc::new(wrong)),
            server_addr,
            "dawn",
        )
        .unwrap()
        .await;
    assert!(result.is_err());
    assert!(
        seen_rx.try_recv().is_err(),
        "the server must not see a second connection"
    );
}
