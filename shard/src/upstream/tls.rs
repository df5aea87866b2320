//! The TLS client configuration shared (read-only) by every shard: webpki roots plus any extra
//! CA certificates from the config, ALPN `http/1.1`.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// Builds the client config, failing with a message that names the bad file.
pub(crate) fn client_config(
    extra_ca_files: &[String],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("upstream.extra_ca_files: cannot read {path}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("upstream.extra_ca_files: {path} is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "upstream.extra_ca_files: {path} holds no certificate"
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("upstream.extra_ca_files: {path}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
