//! SOCKS5 for Envoy, which has no SOCKS client: a loopback listener per proxied upstream that
//! Envoy's cluster points at. Each connection Envoy opens is carried through the proxy
//! (RFC 1928, username/password per RFC 1929) to the upstream, byte for byte, so TLS stays
//! end to end between Envoy and the upstream.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

/// Where and how to reach one upstream through a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: String,
    pub proxy: (String, u16),
    pub target: (String, u16),
    /// RFC 1929 username and password.
    pub credentials: Option<(String, String)>,
}

/// A running tunnel; it stops accepting when dropped (connections it carries finish).
pub struct Tunnel {
    pub addr: SocketAddr,
    /// Read for every new connection, so changed credentials apply without a new port.
    route: Arc<RwLock<Route>>,
    /// Dropping it ends the accept loop.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Tunnel {
    /// Listens on `bind` (port 0: any) and serves until dropped. Needs a Tokio runtime.
    pub fn start(route: Route, bind: SocketAddr) -> std::io::Result<Tunnel> {
        let std_listener = std::net::TcpListener::bind(bind)?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let route = Arc::new(RwLock::new(route));
        let current = route.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => return,
                    a = listener.accept() => a,
                };
                let r = current.read().map(|r| r.clone());
                match (accepted, r) {
                    (Ok((inbound, _)), Ok(r)) => {
                        tokio::spawn(async move { carry(inbound, &r).await });
                    }
                    (Err(e), _) => warn!("SOCKS5 tunnel accept failed: {e}"),
                    (_, Err(_)) => return,
                }
            }
        });
        Ok(Tunnel {
            addr,
            route,
            _stop: stop,
        })
    }

    pub fn route(&self) -> Option<Route> {
        self.route.read().ok().map(|r| r.clone())
    }

    /// New connections follow `route` from now on.
    pub fn set_route(&self, route: Route) {
        if let Ok(mut r) = self.route.write() {
            *r = route;
        }
    }
}

async fn carry(mut inbound: TcpStream, r: &Route) {
    let _ = inbound.set_nodelay(true);
    let proxy = (r.proxy.0.as_str(), r.proxy.1);
    let target = (r.target.0.as_str(), r.target.1);
    let connected = match &r.credentials {
        Some((user, pass)) => {
            tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, target, user, pass).await
        }
        None => tokio_socks::tcp::Socks5Stream::connect(proxy, target).await,
    };
    let mut outbound = match connected {
        Ok(s) => s,
        Err(e) => {
            // Envoy only sees the connection close; the reason is here, for the operator.
            warn!(
                upstream = %r.upstream,
                proxy = %format!("{}:{}", r.proxy.0, r.proxy.1),
                "SOCKS5 proxy refused the connection: {}",
                describe(&e)
            );
            return;
        }
    };
    let _ = outbound.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut inbound, &mut *outbound).await {
        Ok((up, down)) => debug!(upstream = %r.upstream, up, down, "SOCKS5 connection closed"),
        Err(e) => debug!(upstream = %r.upstream, "SOCKS5 connection ended: {e}"),
    }
}

/// The proxy's refusal in an operator's words.
pub fn describe(e: &tokio_socks::Error) -> String {
    use tokio_socks::Error;
    match e {
        Error::PasswordAuthFailure(_) => {
            "authentication failed (wrong username or password)".into()
        }
        Error::NoAcceptableAuthMethods => {
            "it accepts none of our authentication methods (does it need a username and password?)"
                .into()
        }
        // Some proxies (pproxy) close instead of answering a failed authentication.
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the proxy closed the connection during the SOCKS5 handshake (wrong username or password?)".into()
        }
        Error::Io(io) => format!("cannot reach the proxy ({io})"),
        Error::ConnectionRefused => "the proxy could not connect to the upstream (refused)".into(),
        Error::HostUnreachable | Error::NetworkUnreachable => {
            "the proxy cannot reach the upstream".into()
        }
        Error::ConnectionNotAllowedByRuleset => "the proxy's rules forbid this destination".into(),
        other => other.to_string(),
    }
}
