//! TLS termination: the rustls server configurations of the data and admin listeners, built
//! by the control plane from the PEM the config loaded (at start and on every reload, so new
//! certificates take effect for the next handshake without a restart), and shared read-only
//! by every shard.
//!
//! With `client_ca` set the listener is mTLS: rustls refuses, during the handshake, a client
//! that shows no certificate or one that does not chain to that CA, so such a client never
//! gets as far as a request, let alone a token check.

use busbar_core::config::{Config, PemFile, Tls, TlsVersion};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// ALPN identifiers, in the server's order of preference.
pub(crate) const ALPN_H2: &[u8] = b"h2";
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The server configurations of one config generation.
#[derive(Clone, Default)]
pub(crate) struct ServerTls {
    /// The data listener's, when `[tls]` is set.
    pub(crate) data: Option<Arc<rustls::ServerConfig>>,
    /// The admin listener's, when `[admin.tls]` is set.
    pub(crate) admin: Option<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    /// Builds both from `config`; the error names the setting and file at fault.
    pub(crate) fn build(config: &Config) -> Result<ServerTls, String> {
        let h2 = config.http2.enabled;
        Ok(ServerTls {
            data: config
                .tls
                .as_ref()
                .map(|t| server_config(t, "tls", h2))
                .transpose()?,
            admin: config
                .admin
                .as_ref()
                .and_then(|a| a.tls.as_ref())
                .map(|t| server_config(t, "admin.tls", false))
                .transpose()?,
        })
    }
}

fn certs(f: &PemFile, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(f.pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: `{}` is not valid PEM: {e}", f.path))?;
    if certs.is_empty() {
        return Err(format!("{what}: `{}` holds no certificate", f.path));
    }
    Ok(certs)
}

/// One listener's configuration: TLS 1.3 (and 1.2 unless `min_version = "1.3"`), ALPN `h2`
/// (when HTTP/2 is on) then `http/1.1`, and client certificates checked against `client_ca`.
fn server_config(t: &Tls, what: &str, h2: bool) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = certs(&t.cert, &format!("{what}.cert"))?;
    let key = PrivateKeyDer::from_pem_slice(t.key.pem.as_bytes()).map_err(|e| {
        format!(
            "{what}.key: `{}` holds no usable private key: {e}",
            t.key.path
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("{what}: {e}"))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, &format!("{what}.client_ca"))? {
                roots
                    .add(c)
                    .map_err(|e| format!("{what}.client_ca: `{}`: {e}", ca.path))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{what}.client_ca: `{}`: {e}", ca.path))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{what}: the key `{}` does not go with the certificate `{}`: {e}",
            t.key.path, t.cert.path
        )
    })?;
    config.alpn_protocols = if h2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    // No 0-RTT: a replayed request could be spent twice.
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// Largest ClientHello read ahead of the handshake (a ClientHello is a few hundred bytes; a
/// post-quantum key share or many extensions take it to a few KiB).
const MAX_HELLO: usize = 64 * 1024;

/// Reads a client's first bytes until its ClientHello is whole, and says whether it offers
/// `h2` by ALPN. Returns every byte read, to be handed to the handshake.
pub(crate) async fn read_client_hello(
    tcp: &mut monoio::net::TcpStream,
) -> Result<(Vec<u8>, bool), String> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut bytes: Vec<u8> = Vec::with_capacity(4096);
    let mut fed = 0;
    loop {
        let (r, b) = crate::io::read_append(tcp, bytes, 4096).await;
        bytes = b;
        match r {
            Ok(0) => return Err("the client closed before its ClientHello".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
        if bytes.len() > MAX_HELLO {
            return Err(format!("no whole ClientHello within {MAX_HELLO} bytes"));
        }
        while fed < bytes.len() {
            let mut rest = &bytes[fed..];
            match acceptor.read_tls(&mut rest) {
                Ok(n) => fed += n,
                Err(e) => return Err(format!("not TLS: {e}")),
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let h2 = accepted
                    .client_hello()
                    .alpn()
                    .is_some_and(|mut p| p.any(|p| p == ALPN_H2));
                return Ok((bytes, h2));
            }
            Ok(None) => {}
            Err((e, _alert)) => return Err(e.to_string()),
        }
    }
}
