//! TLS for clients: the node's certificate, optional client-certificate verification, and the
//! handshake in front of the ordinary connection loop.
//!
//! rustls with the `ring` provider, chosen explicitly rather than through the process default, so
//! that whatever else links rustls cannot change the node's cryptography. A TLS client is served
//! by the same `connection::serve` as a plain one, over the decrypted stream.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{NodeConfig, TlsAuthClients};
use crate::state::{ClientInfo, Shared};

/// How long a client has to finish the handshake: a connection that opens and says nothing holds
/// a client slot only this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the node's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {source}")]
    Pem {
        what: &'static str,
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(String),
    #[error("cannot use the CA certificates in {path}: {source}")]
    Ca { path: String, source: rustls::Error },
    #[error("cannot verify client certificates: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot use the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        what: "certificates",
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Builds the acceptor from `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file` and
/// `tls-auth-clients`.
///
/// # Errors
/// An unreadable or invalid file, or a key that does not match the certificate.
pub fn acceptor(config: &NodeConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&config.tls_cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(&config.tls_key_file).map_err(|source| TlsError::Pem {
            what: "a private key",
            path: config.tls_key_file.clone(),
            source,
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder =
        if config.tls_ca_cert_file.is_empty() || config.tls_auth_clients == TlsAuthClients::No {
            builder.with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            for cert in certificates(&config.tls_ca_cert_file)? {
                roots.add(cert).map_err(|source| TlsError::Ca {
                    path: config.tls_ca_cert_file.clone(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match config.tls_auth_clients {
                TlsAuthClients::Optional => verifier.allow_unauthenticated().build()?,
                _ => verifier.build()?,
            };
            builder.with_client_cert_verifier(verifier)
        };
    let server = builder.with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Where the plain listener goes, if anywhere: port 0 turns it off when a TLS port is configured
/// (as in Redis), and otherwise asks for any free port (which tests rely on).
#[must_use]
pub fn plain_address(config: &NodeConfig) -> Option<String> {
    (config.port != 0 || config.tls_port == 0).then(|| format!("{}:{}", config.bind, config.port))
}

/// Serves one TLS client: handshake, protected mode (its refusal goes over TLS, as Redis sends
/// it after the handshake), then the ordinary connection loop. `info` is already registered.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    socket: TcpStream,
    info: Arc<ClientInfo>,
    shutdown: watch::Receiver<bool>,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return handshake_failed(&shared, &info, &e),
        Err(_) => {
            let e = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
            return handshake_failed(&shared, &info, &e);
        }
    };
    if crate::security::refuses(&shared, info.addr.ip()) {
        shared.unregister_client(info.id);
        shared
            .stats
            .rejected_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut stream = stream;
        let _ = stream.write_all(crate::security::DENIED.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    crate::connection::serve(shared, stream, info, shutdown).await;
}

fn handshake_failed(shared: &Shared, info: &ClientInfo, e: &io::Error) {
    // Debug, not warn: scanners and clients without a certificate would fill the log.
    tracing::debug!(client = info.id, addr = %info.addr, "TLS handshake failed: {e}");
    shared.unregister_client(info.id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_0_turns_plain_off_only_beside_a_tls_port() {
        let config = |port, tls_port| NodeConfig {
            port,
            tls_port,
            ..NodeConfig::default()
        };
        assert_eq!(
            plain_address(&config(6379, 0)).as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(
            plain_address(&config(6379, 6380)).as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(plain_address(&config(0, 6380)), None);
        assert_eq!(plain_address(&config(0, 0)).as_deref(), Some("127.0.0.1:0"));
    }
}
