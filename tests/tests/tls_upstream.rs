//! `https://` providers: busbar verifies the provider's certificate against the webpki roots
//! plus the CA files named in `upstream.extra_ca_files`. The test makes its own CA and a
//! certificate for `localhost` (rcgen) and runs a real TLS provider (rustls) on loopback.

use busbar_tests::{Action, Busbar, Client, DRIVERS, Scripted, json_response};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "busbar test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

fn config(port: u16, ca_file: Option<&str>) -> String {
    let extra = ca_file
        .map(|f| format!("[upstream]\nextra_ca_files = [\"{f}\"]\n"))
        .unwrap_or_default();
    format!(
        r#"
listen = "127.0.0.1:0"
shards = 1
{extra}
[providers.secure]
protocol = "openai"
base_url = "https://localhost:{port}/v1"
api_key_env = "TLS_TEST_KEY"
[models.m]
provider = "secure"
"#
    )
}

#[test]
fn https_provider_with_an_extra_ca() {
    let pki = pki();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.ca_pem).unwrap();
    let body = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
    let p = Scripted::start_tls(Arc::clone(&pki.server), move |_| {
        Action::Reply(json_response(200, body))
    });
    let port = p.addr.port();
    for d in DRIVERS {
        let b = Busbar::start(
            &config(port, Some(ca.path().to_str().unwrap())),
            d,
            &[("TLS_TEST_KEY", "sk-tls")],
        );
        let mut c = Client::connect(b.addr);
        for _ in 0..3 {
            let r = c.post_json("/v1/chat/completions", r#"{"model":"m"}"#, &[]);
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.body, body.as_bytes());
            let got = p.next_request();
            assert_eq!(got.header("authorization"), Some("Bearer sk-tls"));
            assert_eq!(
                got.header("host"),
                Some(format!("localhost:{port}").as_str())
            );
        }
        b.stop();
    }
    assert_eq!(
        p.connections(),
        2,
        "one TLS connection per run, reused for every request"
    );

    // Without the CA the certificate is not trusted: a 502 that says why.
    let b = Busbar::start(&config(port, None), "epoll", &[("TLS_TEST_KEY", "sk-tls")]);
    let r = Client::connect(b.addr).post_json("/v1/chat/completions", r#"{"model":"m"}"#, &[]);
    assert_eq!(r.status, 502);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("TLS handshake") && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    b.stop();
}

#[test]
fn a_bad_ca_file_is_a_clear_start_up_error() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "not a certificate").unwrap();
    let cfg = config(1, Some(f.path().to_str().unwrap()));
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, cfg.as_bytes()).unwrap();
    let out = std::process::Command::new(busbar_tests::bin_path("busbar"))
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("extra_ca_files") && err.contains(f.path().to_str().unwrap()),
        "{err}"
    );
}
