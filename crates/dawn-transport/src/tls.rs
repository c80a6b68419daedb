//! TLS 1.3 with RFC 7250 raw public keys: the node's Ed25519 key is its TLS key.
//!
//! Both sides present a bare `SubjectPublicKeyInfo` instead of a certificate and prove
//! possession of the key by signing the handshake transcript. There are no certificate
//! authorities: a dialer states the [`NodeId`] it expects and refuses any other key, a listener
//! accepts any valid Ed25519 key and reports the authenticated [`NodeId`] (whether to talk to
//! that node is the trust policy's call, made right after the handshake).
//!
//! The expected [`NodeId`] travels in a per-dial verifier ([`ServerVerifier`]) rather than in
//! the TLS server name: the verifier also records the key the peer actually presented, so a
//! mismatch becomes a typed error instead of an alert string, and no name is sent in the
//! clear (SNI is off). Session resumption and 0-RTT are off as well, so every connection runs
//! a full handshake that authenticates both keys.

use std::sync::{Arc, OnceLock};

use dawn_crypto::{PUBLIC_KEY_LEN, Signature, SigningKey, ct_eq};
use dawn_identity::NodeId;
use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{AlwaysResolvesClientRawPublicKeys, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{AlwaysResolvesServerRawPublicKeys, NoServerSessionStorage};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, PeerIncompatible,
    SignatureScheme,
};
use zeroize::Zeroizing;

/// The ALPN protocol every Dawn connection negotiates.
pub const ALPN: &[u8] = b"dawn/1";

/// The server name handed to rustls. It is never sent (SNI is off) and never checked: the
/// peer's identity is its key.
pub(crate) const SERVER_NAME: &str = "dawn";

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (33 bytes, no unused bits) }, followed by the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410): version 0, the algorithm, and an
/// OCTET STRING wrapping the 32-byte seed as another OCTET STRING.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A TLS configuration could not be built from a node key.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The TLS library rejected the key or the protocol settings.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The configuration lacks the cipher suite QUIC needs for its initial packets.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(#[from] NoInitialCipherSuite),
}

/// The `SubjectPublicKeyInfo` DER of an Ed25519 public key.
pub(crate) fn spki_der(key: &[u8; PUBLIC_KEY_LEN]) -> Vec<u8> {
    let mut der = Vec::with_capacity(SPKI_PREFIX.len() + PUBLIC_KEY_LEN);
    der.extend_from_slice(&SPKI_PREFIX);
    der.extend_from_slice(key);
    der
}

/// Parses a peer's raw public key (an Ed25519 `SubjectPublicKeyInfo`) into the [`NodeId`] it
/// names. Anything else, including an X.509 certificate, is `None`.
pub(crate) fn node_id_from_spki(der: &[u8]) -> Option<NodeId> {
    let key = der.strip_prefix(SPKI_PREFIX.as_slice())?;
    let key: &[u8; PUBLIC_KEY_LEN] = key.try_into().ok()?;
    NodeId::from_bytes(key).ok()
}

/// The node key as rustls wants it: the SPKI as the "certificate" and a ring signing key.
fn certified_key(key: &SigningKey) -> Result<CertifiedKey, TlsError> {
    let seed = key.to_bytes();
    let mut pkcs8 = Zeroizing::new(Vec::with_capacity(PKCS8_PREFIX.len() + seed.len()));
    pkcs8.extend_from_slice(&PKCS8_PREFIX);
    pkcs8.extend_from_slice(seed.as_slice());
    let signer =
        rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8.as_slice()))?;
    let spki = spki_der(key.verifying_key().as_bytes());
    Ok(CertifiedKey::new(vec![CertificateDer::from(spki)], signer))
}

/// The *ring* provider, with only what Dawn uses: TLS 1.3 suites (the workspace builds rustls
/// without TLS 1.2) and the default key-exchange groups.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration of a node: raw public keys both ways, client
/// authentication mandatory, TLS 1.3 only, ALPN `dawn/1`, no tickets, no 0-RTT.
pub(crate) fn rustls_server_config(key: &SigningKey) -> Result<rustls::ServerConfig, TlsError> {
    let certified = certified_key(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier))
        .with_cert_resolver(Arc::new(AlwaysResolvesServerRawPublicKeys::new(Arc::new(
            certified,
        ))));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

/// The rustls client configuration of a node, with a verifier that refuses every key; each
/// dial swaps in a [`ServerVerifier`] for the node it expects.
pub(crate) fn rustls_client_config(key: &SigningKey) -> Result<rustls::ClientConfig, TlsError> {
    let certified = certified_key(key)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerVerifier::refusing()))
        .with_client_cert_resolver(Arc::new(AlwaysResolvesClientRawPublicKeys::new(Arc::new(
            certified,
        ))));
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_sni = false;
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}

/// A copy of `base` that accepts exactly the server key `expected`, with the verifier that
/// records what the server actually presented.
pub(crate) fn client_config_for(
    base: &rustls::ClientConfig,
    expected: NodeId,
) -> Result<(QuicClientConfig, Arc<ServerVerifier>), TlsError> {
    let verifier = Arc::new(ServerVerifier::expecting(expected));
    let mut config = base.clone();
    config
        .dangerous()
        .set_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>);
    Ok((QuicClientConfig::try_from(config)?, verifier))
}

/// Dawn's TLS server configuration for `key`, ready for a raw quinn endpoint.
///
/// [`Transport`](crate::Transport) builds its endpoint from exactly this; it is public for tools
/// that need a bare quinn endpoint speaking Dawn's TLS (benchmarks, test harnesses). Clients
/// must present an Ed25519 raw public key; any valid one is accepted.
///
/// # Errors
/// [`TlsError`] if rustls rejects the key (it does not for keys from `dawn-crypto`).
pub fn quic_server_config(key: &SigningKey) -> Result<QuicServerConfig, TlsError> {
    Ok(QuicServerConfig::try_from(rustls_server_config(key)?)?)
}

/// Dawn's TLS client configuration for `key`, accepting only the server key `expected`.
///
/// The counterpart of [`quic_server_config`]; what [`Transport::connect`] uses for each dial.
///
/// [`Transport::connect`]: crate::Transport::connect
///
/// # Errors
/// [`TlsError`] if rustls rejects the key (it does not for keys from `dawn-crypto`).
pub fn quic_client_config(
    key: &SigningKey,
    expected: NodeId,
) -> Result<QuicClientConfig, TlsError> {
    let base = rustls_client_config(key)?;
    Ok(client_config_for(&base, expected)?.0)
}

/// What a server presented instead of the key a dialer expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented {
    /// A valid Ed25519 key, but not the expected one.
    Other(NodeId),
    /// Not an Ed25519 raw public key at all.
    Invalid,
}

/// The key the dialer expected differs from the one the server presented.
#[derive(Debug, thiserror::Error)]
#[error("peer presented {presented} instead of the expected {expected}")]
struct MismatchError {
    expected: String,
    presented: String,
}

/// Verifies a server's raw public key against the [`NodeId`] the dialer expects.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    /// `None` refuses every key (the base configuration, never used for a dial).
    expected: Option<NodeId>,
    /// Set when the server presented something else, for a typed error after the handshake.
    presented: OnceLock<Presented>,
}

impl ServerVerifier {
    fn refusing() -> Self {
        Self {
            expected: None,
            presented: OnceLock::new(),
        }
    }

    fn expecting(expected: NodeId) -> Self {
        Self {
            expected: Some(expected),
            presented: OnceLock::new(),
        }
    }

    /// What the server presented if it was not the expected key.
    pub(crate) fn mismatch(&self) -> Option<Presented> {
        self.presented.get().copied()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = (intermediates.is_empty())
            .then(|| node_id_from_spki(end_entity))
            .flatten();
        let Some(presented) = presented else {
            let _ = self.presented.set(Presented::Invalid);
            return Err(CertificateError::BadEncoding.into());
        };
        match self.expected {
            Some(expected) if ct_eq(expected.as_bytes(), presented.as_bytes()) => {
                Ok(ServerCertVerified::assertion())
            }
            expected => {
                let _ = self.presented.set(Presented::Other(presented));
                let error = MismatchError {
                    expected: expected.map_or_else(|| "no key".to_owned(), |id| id.to_string()),
                    presented: presented.to_string(),
                };
                Err(CertificateError::Other(OtherError(Arc::new(error))).into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_ed25519(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Accepts any client presenting a valid Ed25519 raw public key (and proving it owns it).
#[derive(Debug)]
pub(crate) struct ClientVerifier;

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.is_empty() && node_id_from_spki(end_entity).is_some() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(CertificateError::BadEncoding.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_ed25519(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Checks the handshake signature with Dawn's strict Ed25519 verification.
fn verify_ed25519(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    let key = node_id_from_spki(cert).ok_or(CertificateError::BadEncoding)?;
    let signature =
        Signature::try_from_slice(dss.signature()).map_err(|_| CertificateError::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| CertificateError::BadSignature)?;
    Ok(HandshakeSignatureValid::assertion())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn spki_round_trips_and_rejects_other_encodings() {
        let id: NodeId = key(1).verifying_key().into();
        let der = spki_der(id.as_bytes());
        assert_eq!(der.len(), 44);
        assert_eq!(node_id_from_spki(&der), Some(id));
        assert_eq!(node_id_from_spki(&der[..43]), None);
        let mut longer = der.clone();
        longer.push(0);
        assert_eq!(node_id_from_spki(&longer), None);
        let mut wrong_oid = der.clone();
        wrong_oid[8] = 0x71; // Ed448
        assert_eq!(node_id_from_spki(&wrong_oid), None);
        // A small-order point is not an acceptable identity.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(node_id_from_spki(&spki_der(&identity)), None);
    }

    #[test]
    fn ring_accepts_our_pkcs8_and_derives_the_same_public_key() {
        let signing = key(7);
        let certified = certified_key(&signing).unwrap();
        let ring_spki = certified.key.public_key().unwrap();
        assert_eq!(
            ring_spki.as_ref(),
            spki_der(signing.verifying_key().as_bytes()).as_slice()
        );
        // A signature made by ring verifies with dawn-crypto's strict verifier.
        let signer = certified
            .key
            .choose_scheme(&[SignatureScheme::ED25519])
            .unwrap();
        let sig = signer.sign(b"transcript").unwrap();
        let sig = Signature::try_from_slice(&sig).unwrap();
        signing.verifying_key().verify(b"transcript", &sig).unwrap();
    }

    #[test]
    fn configs_speak_tls13_only_with_raw_keys_and_dawn_alpn() {
        let server = rustls_server_config(&key(1)).unwrap();
        let client = rustls_client_config(&key(2)).unwrap();
        for suite in &server.crypto_provider().cipher_suites {
            assert_eq!(suite.version(), &rustls::version::TLS13, "{suite:?}");
        }
        assert!(server.cert_resolver.only_raw_public_keys());
        assert!(ClientVerifier.requires_raw_public_keys());
        assert!(ClientVerifier.client_auth_mandatory());
        assert_eq!(server.alpn_protocols, [ALPN.to_vec()]);
        assert_eq!(server.send_tls13_tickets, 0);
        assert!(client.client_auth_cert_resolver.only_raw_public_keys());
        assert!(!client.enable_sni);
        assert!(!client.enable_early_data);
        assert_eq!(client.alpn_protocols, [ALPN.to_vec()]);
    }

    #[test]
    fn server_verifier_records_the_presented_key() {
        let expected: NodeId = key(1).verifying_key().into();
        let other: NodeId = key(2).verifying_key().into();
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let now = UnixTime::now();

        let verifier = ServerVerifier::expecting(expected);
        let good = CertificateDer::from(spki_der(expected.as_bytes()));
        assert!(
            verifier
                .verify_server_cert(&good, &[], &name, &[], now)
                .is_ok()
        );
        assert_eq!(verifier.mismatch(), None);
        // A chain is not a raw public key.
        assert!(
            verifier
                .verify_server_cert(&good, std::slice::from_ref(&good), &name, &[], now)
                .is_err()
        );

        let verifier = ServerVerifier::expecting(expected);
        let bad = CertificateDer::from(spki_der(other.as_bytes()));
        let error = verifier
            .verify_server_cert(&bad, &[], &name, &[], now)
            .unwrap_err();
        assert!(error.to_string().contains(&other.to_string()), "{error}");
        assert_eq!(verifier.mismatch(), Some(Presented::Other(other)));

        let verifier = ServerVerifier::expecting(expected);
        let x509ish = CertificateDer::from(vec![0x30, 0x82, 0x01, 0x00]);
        assert!(
            verifier
                .verify_server_cert(&x509ish, &[], &name, &[], now)
                .is_err()
        );
        assert_eq!(verifier.mismatch(), Some(Presented::Invalid));

        let refusing = ServerVerifier::refusing();
        assert!(
            refusing
                .verify_server_cert(&good, &[], &name, &[], now)
                .is_err()
        );
    }
}
