//! `render --format istio`: what an Istio mesh needs to run the gateway in its ingress
//! gateway: the filter as a `WasmPlugin` (its secrets sealed, the key from the proxy's
//! environment), a `ServiceEntry` and a `DestinationRule` per upstream (TLS, pool, HTTP/2),
//! and the `Gateway` and `VirtualService` that route by the header the filter sets.
//! Certificates and keys are referenced by Kubernetes secret name (`credentialName`), never
//! inlined.

use crate::config::model::{Gateway, Upstream, UpstreamKind};
use crate::translate::{FilterModule, filter_config};
use serde_json::{Value, json};
use switchboard_protocol::filter_config::{ROUTE_HEADER, SECRETS_KEY_ENV};

/// Where the objects go and which gateway workload runs the filter.
#[derive(Debug, Clone)]
pub struct IstioTarget {
    pub namespace: String,
    /// The ingress gateway's pod labels (`istio=ingressgateway`).
    pub selector: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum IstioError {
    #[error(
        "upstream {0} needs the bridge (stdio or legacy SSE), which runs inside `switchboard serve`: Istio cannot carry it"
    )]
    NeedsBridge(String),
    #[error(
        "JWT clients and auth.oauth ({0}) are not rendered for Istio yet: their payload header must be set by a RequestAuthentication and stripped from clients first, which needs an EnvoyFilter"
    )]
    JwtClients(String),
    #[error(
        "`hosts:` (host routes) are not rendered for Istio: route hostnames with a VirtualService of your own"
    )]
    HostRoutes,
    #[error(
        "set {SECRETS_KEY_ENV}: the filter's secrets are sealed with it, and the gateway's proxy needs the same key in its environment"
    )]
    NoSecretsKey,
}

/// The Istio objects, in the order to apply them.
pub fn objects(
    gateway: &Gateway,
    module: &FilterModule,
    target: &IstioTarget,
) -> Result<Vec<Value>, IstioError> {
    if let Some(u) = gateway
        .upstreams
        .iter()
        .find(|u| !matches!(u.kind, UpstreamKind::Http | UpstreamKind::Openapi))
    {
        return Err(IstioError::NeedsBridge(u.name.to_string()));
    }
    let jwt: Vec<&str> = gateway
        .auth
        .iter()
        .flat_map(|a| &a.clients)
        .filter(|c| c.jwt.is_some())
        .map(|c| c.name.as_str())
        .chain(
            // OAuth tokens reach the filter the same way (verified by jwt_authn).
            gateway.oauth().map(|o| o.client.as_str()),
        )
        .collect();
    if !jwt.is_empty() {
        return Err(IstioError::JwtClients(jwt.join(", ")));
    }
    if gateway.hosts.is_some() {
        return Err(IstioError::HostRoutes);
    }
    let key = module
        .secrets_key
        .as_deref()
        .ok_or(IstioError::NoSecretsKey)?;
    let ns = target.namespace.as_str();
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "switchboard"}});

    let mut out = vec![wasm_plugin(
        gateway,
        module,
        target,
        key,
        &meta("switchboard"),
    )];
    for u in &gateway.upstreams {
        let t = Target::of(u);
        out.push(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta(&format!("switchboard-{}", u.name)),
            "spec": {
                "hosts": [t.host],
                "location": "MESH_EXTERNAL",
                "ports": [{"number": t.port, "name": format!("{}-{}", t.protocol.to_lowercase(), t.port), "protocol": t.protocol}],
                "resolution": if t.address.is_some() { "STATIC" } else { "DNS" },
                "endpoints": t.address.as_ref().map(|a| json!([{"address": a}])),
            }
        }));
        out.push(destination_rule(
            u,
            &t,
            &meta(&format!("switchboard-{}", u.name)),
        ));
    }
    // The ingress gateway's own port: plain, or TLS with the certificate (and the client
    // CA, for mutual TLS) in the Kubernetes secret `switchboard-server`.
    let servers = match &gateway.server.tls {
        Some(t) => json!([{
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["*"],
            "tls": {
                "mode": if t.client_ca.is_some() { "MUTUAL" } else { "SIMPLE" },
                "credentialName": "switchboard-server",
            },
        }]),
        None => {
            json!([{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}])
        }
    };
    out.push(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta("switchboard"),
        "spec": {"selector": selector(target), "servers": servers}
    }));
    out.push(virtual_service(gateway, &meta("switchboard")));
    strip_nulls(&mut out);
    Ok(out)
}

/// An upstream as the mesh names it.
struct Target {
    /// The name the mesh knows it by: its URL's host, or for an IP address a name of its
    /// own (`<upstream>.switchboard.internal`) whose endpoint is that address.
    host: String,
    address: Option<String>,
    port: u16,
    /// `HTTPS` when the gateway originates TLS to it.
    protocol: &'static str,
    authority: String,
    path: String,
}

impl Target {
    fn of(u: &Upstream) -> Target {
        // A REST upstream is reached at its base URL.
        let url = u.base_url.as_ref().unwrap_or(&u.url);
        let ip = url.host().parse::<std::net::IpAddr>().is_ok();
        Target {
            host: if ip {
                format!("{}.switchboard.internal", u.name)
            } else {
                url.host()
            },
            address: ip.then(|| url.host()),
            port: url.port(),
            protocol: if url.is_tls() { "HTTPS" } else { "HTTP" },
            authority: url.authority(),
            path: url.path_and_query(),
        }
    }

    /// Istio's name for the cluster of this host and port: where the filter's callouts go.
    fn cluster(&self) -> String {
        format!("outbound|{}||{}", self.port, self.host)
    }
}

fn selector(target: &IstioTarget) -> Value {
    Value::Object(
        target
            .selector
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
    )
}

fn wasm_plugin(
    gateway: &Gateway,
    module: &FilterModule,
    target: &IstioTarget,
    key: &str,
    meta: &Value,
) -> Value {
    let mut config = filter_config(gateway, module);
    for (fc, u) in config.upstreams.iter_mut().zip(&gateway.upstreams) {
        fc.cluster = Target::of(u).cluster();
    }
    // The ingress gateway serves names of its own: only the ones the file lists, if any.
    config.allowed_hosts = gateway.server.allowed_hosts.clone().unwrap_or_default();
    config.loopback_origins = false;
    config.seal_secrets(key);
    let plugin_config: Value = serde_json::from_str(&config.to_json()).unwrap_or(Value::Null);
    let url = if module.path.contains("://") {
        module.path.clone()
    } else {
        format!("file://{}", module.path)
    };
    let local_file = std::path::Path::new(&module.path).is_file();
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector(target)},
            "url": url,
            "sha256": if local_file { json!(module.sha256) } else { json!(null) },
            "pluginName": "switchboard",
            // After Istio's authentication filters, before its authorization and the router.
            "phase": "AUTHZ",
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": plugin_config,
            // The key of the sealed secrets: from the proxy container's environment, which
            // the operator fills from a Kubernetes secret (docs/operations.md).
            "vmConfig": {"env": [{"name": SECRETS_KEY_ENV, "valueFrom": "HOST"}]},
        }
    })
}

fn destination_rule(u: &Upstream, t: &Target, meta: &Value) -> Value {
    let tr = &u.transport;
    let tls = u.tls.as_ref();
    let mutual = tls.is_some_and(|t| t.client_cert.is_some());
    let tls_policy = (t.protocol == "HTTPS").then(|| {
        json!({
            "mode": if mutual { "MUTUAL" } else { "SIMPLE" },
            "sni": tls.and_then(|t| t.server_name.clone())
                .or_else(|| t.address.is_none().then(|| t.host.clone())),
            // The CA and client certificate, when the file names them: a Kubernetes secret
            // (`tls.crt`, `tls.key`, `ca.crt`) of this name in the gateway's namespace.
            "credentialName": tls
                .filter(|t| t.ca_cert.is_some() || t.client_cert.is_some())
                .map(|_| format!("switchboard-upstream-{}", u.name)),
            "insecureSkipVerify": tls.is_some_and(|t| t.insecure_skip_verify).then_some(true),
        })
    });
    let mut http = serde_json::Map::new();
    if tr.http2 {
        http.insert("h2UpgradePolicy".into(), json!("UPGRADE"));
    }
    http.insert(
        "idleTimeout".into(),
        json!(format!("{}s", tr.idle_conn_timeout.as_secs().max(1))),
    );
    let mut tcp = serde_json::Map::new();
    if tr.max_idle_conns_per_host > 0 {
        tcp.insert("maxConnections".into(), json!(tr.max_idle_conns_per_host));
    } else if tr.max_idle_conns > 0 {
        tcp.insert("maxConnections".into(), json!(tr.max_idle_conns));
    }
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta,
        "spec": {
            "host": t.host,
            "trafficPolicy": {
                "connectionPool": {"http": http, "tcp": tcp},
                "tls": tls_policy,
            }
        }
    })
}

/// Routes by the header the filter sets once it has chosen the upstream: the aggregated
/// endpoint and each upstream's own, its event streams without a timeout.
fn virtual_service(gateway: &Gateway, meta: &Value) -> Value {
    let mut http = Vec::new();
    for u in &gateway.upstreams {
        let t = Target::of(u);
        let own = format!("{}/{}/mcp", gateway.server.upstream_path, u.name);
        let destination = json!([{"destination": {"host": t.host, "port": {"number": t.port}}}]);
        let rewrite = json!({"uri": t.path, "authority": t.authority});
        let headers = json!({"request": {"remove": [ROUTE_HEADER, switchboard_protocol::access::IDENTITY_HEADER]}});
        for path in [gateway.server.mcp_path.as_str(), own.as_str()] {
            let header = json!({ROUTE_HEADER: {"exact": u.name.to_string()}});
            http.push(json!({
                "name": format!("{}-stream{}", u.name, if path == own { "-own" } else { "" }),
                "match": [{"uri": {"exact": path}, "method": {"exact": "GET"}, "headers": header}],
                "route": destination, "rewrite": rewrite, "headers": headers, "timeout": "0s",
            }));
            http.push(json!({
                "name": format!("{}{}", u.name, if path == own { "-own" } else { "" }),
                "match": [{"uri": {"exact": path}, "headers": header}],
                "route": destination, "rewrite": rewrite, "headers": headers,
                "timeout": format!("{}ms", u.timeout.as_millis().max(1)),
            }));
        }
    }
    http.push(json!({
        "name": "not-found",
        "directResponse": {"status": 404, "body": {"string": format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32600,"message":"Not found: the MCP endpoint is {}"}}}}"#,
            gateway.server.mcp_path)}},
    }));
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {"hosts": ["*"], "gateways": ["switchboard"], "http": http}
    })
}

/// `null` members (options not set) are left out.
fn strip_nulls(values: &mut [Value]) {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    values.iter_mut().for_each(walk);
}
