//! TLS for the tests: a private CA that issues server and client certificates (rcgen), and an
//! rmcp upstream behind TLS (rustls) that records what each connection showed it: the SNI,
//! the ALPN protocol and the client certificate.

use crate::peers::TestServer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A certificate authority of the test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Issued {
    /// Writes `<name>.crt` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, &self.cert)?;
        std::fs::write(&k, &self.key)?;
        Ok((c, k))
    }

    pub fn der(&self) -> anyhow::Result<Vec<u8>> {
        Ok(CertificateDer::from_pem_slice(self.cert.as_bytes())?.to_vec())
    }
}

impl Ca {
    pub fn new(name: &str) -> anyhow::Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A server certificate for these DNS names or IP addresses.
    pub fn server(&self, names: &[&str]) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// A client certificate with this common name.
    pub fn client(&self, name: &str) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    pub fn write(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let p = dir.join(format!("{name}.crt"));
        std::fs::write(&p, &self.pem)?;
        Ok(p)
    }
}

/// What one TLS connection showed the upstream.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// DER of the client's certificate, if it sent one.
    pub client_cert: Option<Vec<u8>>,
}

/// An rmcp server (the [`TestServer`] tools) on https://127.0.0.1:<ephemeral>/mcp.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
    stop: CancellationToken,
}

impl TlsUpstream {
    /// `client_ca`: require a client certificate signed by it. `keep_alive: false` closes
    /// every connection after one request, so each call shows a fresh handshake.
    pub async fn start(
        label: &str,
        server: &Issued,
        client_ca: Option<&Ca>,
        keep_alive: bool,
    ) -> anyhow::Result<TlsUpstream> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from_pem_slice(ca.pem.as_bytes())?)?;
                builder.with_client_cert_verifier(
                    rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider,
                    )
                    .build()?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let chain = CertificateDer::pem_slice_iter(server.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes())?;
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let label = label.to_string();
        let stop = CancellationToken::new();
        let service: StreamableHttpService<TestServer, LocalSessionManager> =
            StreamableHttpService::new(
                move || Ok(TestServer::new(&label)),
                Default::default(),
                StreamableHttpServerConfig::default()
                    .with_sse_keep_alive(None)
                    .with_cancellation_token(stop.child_token()),
            );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handshakes: Arc<Mutex<Vec<Handshake>>> = Arc::default();
        let seen = handshakes.clone();
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app, seen) = (acceptor.clone(), app.clone(), seen.clone());
                tokio::spawn(async move {
                    // A failed handshake (no or wrong client certificate) just closes.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    let shook = Handshake {
                        sni: conn.server_name().map(str::to_string),
                        alpn: conn
                            .alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                        client_cert: conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.to_vec()),
                    };
                    if let Ok(mut s) = seen.lock() {
                        s.push(shook);
                    }
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let mut builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    builder.http1().keep_alive(keep_alive);
                    let _ = builder.serve_connection_with_upgrades(io, service).await;
                });
            }
        });
        Ok(TlsUpstream {
            addr,
            handshakes,
            stop,
        })
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
