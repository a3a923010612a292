use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

struct Gateway {
    config: Arc<ServerConfig>,
    pin: String,
}

/// A self-signed gateway certificate, optionally asking for client certificates from `ca`.
fn gateway(client_ca: Option<&rcgen::Certificate>) -> Gateway {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gateway.test".to_string()]).unwrap().self_signed(&key).unwrap();
    let pin = pin_of(cert.der());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let mut config = builder.with_single_cert(vec![cert.der().clone()], key).unwrap();
    config.alpn_protocols = vec![portcullis_proto::tunnel::ALPN.as_bytes().to_vec()];
    Gateway { config: Arc::new(config), pin }
}

/// Runs one handshake over an in-memory pipe and one byte each way; the client's result.
async fn handshake(gateway: &Gateway, client: Arc<ClientConfig>) -> Result<(), String> {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(gateway.config.clone());
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(far).await.map_err(|e| e.to_string())?;
        let mut byte = [0u8];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        tls.write_all(&byte).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let result = async {
        let mut tls = connector.connect(server_name("gateway.test"), near).await.map_err(|e| e.to_string())?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(portcullis_proto::tunnel::ALPN.as_bytes()));
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        let mut byte = [0u8];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    server.abort();
    result
}

#[tokio::test]
async fn the_pinned_certificate_is_accepted_whatever_the_name() {
    let gateway = gateway(None);
    handshake(&gateway, client_config(&gateway.pin, None).unwrap()).await.unwrap();
    handshake(&gateway, client_config(&gateway.pin.to_uppercase(), None).unwrap()).await.unwrap();
}

#[tokio::test]
async fn another_certificate_is_refused() {
    let gateway = gateway(None);
    let other = "0f".repeat(32);
    let err = handshake(&gateway, client_config(&other, None).unwrap()).await.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
}

#[tokio::test]
async fn the_client_certificate_is_presented_when_joined() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["gpu-01".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let node_cert = params.signed_by(&node_key, &issuer).unwrap();

    let gateway = gateway(Some(&ca));
    let joined = client_config(&gateway.pin, Some((&node_cert.pem(), &node_key.serialize_pem()))).unwrap();
    handshake(&gateway, joined).await.unwrap();
    let anonymous = client_config(&gateway.pin, None).unwrap();
    assert!(handshake(&gateway, anonymous).await.is_err());
    assert!(client_config(&gateway.pin, Some(("not pem", "not pem"))).is_err());
}

#[test]
fn server_names_take_ips_and_dns_names() {
    assert_eq!(format!("{:?}", server_name("10.0.0.5")), format!("{:?}", ServerName::try_from("10.0.0.5").unwrap()));
    assert_eq!(format!("{:?}", server_name("[::1]")), format!("{:?}", ServerName::try_from("::1").unwrap()));
    let fallback = server_name("bad name!");
    assert_eq!(format!("{fallback:?}"), format!("{:?}", ServerName::try_from("portcullis-gateway").unwrap()));
}
