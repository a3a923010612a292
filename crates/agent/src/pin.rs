//! TLS to the gateway: its certificate is trusted by pin (SHA-256 of the DER), not by a CA,
//! since the gateway's certificate is usually self-signed and the pin came with the token.

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a certificate's DER.
pub fn pin_of(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// Accepts exactly the server certificate whose DER hashes to the pin; the name is ignored.
#[derive(Debug)]
pub struct PinVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// A verifier for `pin` (lower-case hex SHA-256), checking handshake signatures with `provider`.
    pub fn new(pin: &str, provider: Arc<CryptoProvider>) -> PinVerifier {
        PinVerifier { pin: pin.trim().to_ascii_lowercase(), provider }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = pin_of(end_entity);
        if presented == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        tracing::warn!(expected = %self.pin, %presented, "the gateway's TLS certificate does not match the pin");
        Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration for agent tunnels: ALPN `portcullis-agent/1`, the pin, and the client
/// certificate when the agent has joined (`(cert_pem, key_pem)`).
pub fn client_config(pin: &str, client: Option<(&str, &str)>) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinVerifier::new(pin, provider)));
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .context("the client certificate is not valid PEM")?;
            anyhow::ensure!(!certs.is_empty(), "no certificate in the client certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("the client key is not valid PEM")?;
            builder.with_client_auth_cert(certs, key).context("the client certificate and key do not match")?
        }
    };
    config.alpn_protocols = vec![portcullis_proto::tunnel::ALPN.as_bytes().to_vec()];
    Ok(Arc::new(config))
}

/// The TLS server name for a gateway host: its IP or DNS name (the pin, not the name, is checked).
pub fn server_name(host: &str) -> ServerName<'static> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("portcullis-gateway").expect("a valid DNS name"))
}

#[cfg(test)]
mod tests;
