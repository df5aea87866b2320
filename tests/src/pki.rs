//! Test certificates (rcgen) and TLS clients (rustls): a CA of the test's own, server and
//! client certificates it signs, PEM files on disk for busbar's config and for curl.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority of the test's own.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate chain (the leaf, then the CA), PEM.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        Ca { issuer }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        self.issue(params)
    }

    /// A client certificate for `name` (for mTLS).
    pub fn client(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: format!("{}{}", cert.pem(), self.issuer.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Issued {
    /// A rustls server configuration serving this certificate, offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("chain PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Writes `NAME.pem` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

/// How a test client does TLS.
pub struct ClientTls {
    /// CA certificates the client trusts, PEM.
    pub trust: String,
    /// The client's own certificate, for mTLS.
    pub identity: Option<Issued>,
    /// ALPN protocols offered.
    pub alpn: Vec<Vec<u8>>,
    /// Only TLS 1.2 (else 1.3 and 1.2).
    pub tls12_only: bool,
}

impl ClientTls {
    /// Trusting `ca`, no client certificate, offering HTTP/1.1.
    pub fn trusting(ca: &Ca) -> ClientTls {
        ClientTls {
            trust: ca.pem(),
            identity: None,
            alpn: vec![b"http/1.1".to_vec()],
            tls12_only: false,
        }
    }

    /// The same, with a client certificate.
    pub fn with_identity(mut self, id: &Issued) -> ClientTls {
        self.identity = Some(id.clone());
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.trust.as_bytes()) {
            roots.add(c.expect("trust PEM")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(id) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                        .collect::<Result<_, _>>()
                        .expect("identity PEM");
                let key =
                    PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("identity key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }
}

/// A TLS connection to busbar from a test, on a std socket.
pub struct TlsConn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl TlsConn {
    /// Connects and completes the handshake (a refused client certificate can also show up
    /// later, at the first read, under TLS 1.3).
    pub fn connect(
        addr: SocketAddr,
        server_name: &str,
        tls: &ClientTls,
    ) -> std::io::Result<TlsConn> {
        let sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.set_write_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let conn =
            rustls::ClientConnection::new(tls.config(), name).map_err(std::io::Error::other)?;
        let mut t = rustls::StreamOwned::new(conn, sock);
        while t.conn.is_handshaking() {
            t.conn.complete_io(&mut t.sock)?;
        }
        Ok(TlsConn { tls: t })
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Reads what is there (at least one byte, or 0 at the end).
    pub fn read_some(&mut self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 16 * 1024];
        let n = self.tls.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The ALPN protocol the server chose.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.tls.conn.alpn_protocol().map(|p| p.to_vec())
    }

    /// The TLS version in use.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.conn.protocol_version()
    }

    /// Sends one HTTP/1.1 request (kept alive) and reads its response: status and body
    /// (content-length framed, as busbar answers a whole JSON request).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, String)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.tls.write_all(req.as_bytes())?;
        self.tls.flush()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.tls.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut res = httparse::Response::new(&mut fields);
            if let Ok(httparse::Status::Complete(head)) = res.parse(&buf) {
                let len = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                let status = res.code.unwrap_or(0);
                if buf.len() >= head + len {
                    let body = String::from_utf8_lossy(&buf[head..head + len]).to_string();
                    return Ok((status, body));
                }
            }
        }
    }
}
