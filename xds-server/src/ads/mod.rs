//! The aggregated discovery service (state of the world) over gRPC.
//!
//! [`stream::StreamState`] holds the protocol rules per stream and type (nonces, ACK, NACK)
//! as a pure state machine; this module only moves messages between it and tonic.

pub mod peer;
pub mod stream;

use crate::resources::Snapshot;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use stream::StreamState;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone)]
pub struct Ads {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    nodes: Arc<peer::NodePolicy>,
    /// Turns true when the server stops: every stream ends then, so the server does not wait
    /// for Envoys to hang up (they reconnect to whichever control plane comes next).
    stopping: watch::Receiver<bool>,
}

impl Ads {
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>) -> Self {
        Ads {
            snapshots,
            nodes: Arc::default(),
            stopping: watch::channel(false).1,
        }
    }

    /// Ends every stream once `stopping` turns true.
    pub fn with_stopping(self, stopping: watch::Receiver<bool>) -> Self {
        Ads { stopping, ..self }
    }

    /// Serves only the nodes `nodes` allows.
    pub fn with_nodes(self, nodes: peer::NodePolicy) -> Self {
        Ads {
            nodes: Arc::new(nodes),
            ..self
        }
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // What the client certificate (with TLS) says the peer is.
        let names: Option<Vec<String>> = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| peer::certificate_names(c)));
        let nodes = self.nodes.clone();
        let mut stopping = self.stopping.clone();
        let mut inbound = request.into_inner();
        let mut snapshots = self.snapshots.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut state = StreamState::default();
            let mut node = String::new();
            loop {
                let responses = tokio::select! {
                    () = until_true(&mut stopping) => {
                        info!(node = %node, "closing the ADS stream: shutting down");
                        return;
                    }
                    msg = inbound.message() => match msg {
                        Ok(Some(req)) => {
                            if node.is_empty() {
                                let id = req.node.as_ref().map(|n| n.id.clone()).unwrap_or_default();
                                if let Some(why) = nodes.refuses(&id, names.as_deref()) {
                                    warn!(node = %id, peer = %peer, "refused an Envoy: {why}");
                                    let _ = tx.send(Err(Status::permission_denied(why))).await;
                                    return;
                                }
                                node = id;
                                info!(node = %node, peer = %peer, "envoy connected");
                            }
                            // Clone out of the watch so no lock is held across an await.
                            let snapshot = snapshots.borrow_and_update().clone();
                            let (response, event) = state.on_request(&req, &snapshot);
                            log_event(&node, &event);
                            response.into_iter().collect::<Vec<_>>()
                        }
                        Ok(None) => { info!(node = %node, "envoy disconnected"); break; }
                        // An Envoy that exits or restarts just drops its connection.
                        Err(e) if dropped(&e) => { info!(node = %node, "envoy disconnected (its connection closed)"); break; }
                        Err(e) => { warn!(node = %node, error = %e, "ADS stream failed"); break; }
                    },
                    changed = snapshots.changed() => {
                        if changed.is_err() { break; }
                        let snapshot = snapshots.borrow_and_update().clone();
                        state.on_snapshot(&snapshot)
                    }
                };
                for r in responses {
                    debug!(node = %node, type_url = %r.type_url, version = %r.version_info, nonce = %r.nonce, "push");
                    if tx.send(Ok(r)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "switchboard serves state-of-the-world ADS; set ads_config.api_type to GRPC",
        ))
    }
}

/// Whether a stream error is only the peer's connection going away.
fn dropped(status: &Status) -> bool {
    let text = status.to_string().to_ascii_lowercase();
    [
        "broken pipe",
        "connection reset",
        "error reading a body",
        "connection closed",
    ]
    .iter()
    .any(|t| text.contains(t))
}

/// Returns once `flag` is true (or its sender is gone, which never happens while serving).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    while !*flag.borrow_and_update() {
        if flag.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn log_event(node: &str, event: &stream::Event) {
    use stream::Event;
    match event {
        Event::Subscribed { type_url } => debug!(node, type_url = %type_url, "subscribed"),
        Event::Ack { type_url, version } => {
            info!(node, type_url = %short(type_url), version = %version, "envoy accepted")
        }
        Event::Nack {
            type_url,
            version,
            error,
        } => warn!(
            node, type_url = %short(type_url), version = %version, error = %error,
            "envoy REJECTED the configuration; it keeps its last good one"
        ),
        Event::Stale { type_url, nonce } => {
            debug!(node, type_url = %type_url, nonce = %nonce, "ignoring stale request")
        }
        Event::UnknownType { type_url } => {
            warn!(node, type_url = %type_url, "envoy asked for a type switchboard does not serve")
        }
    }
}

fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}
