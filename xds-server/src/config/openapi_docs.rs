//! The OpenAPI documents of REST upstreams, read at load: a file (relative to the gateway
//! file, and watched like certificates) or a URL, fetched through the upstream's own TLS
//! settings. A fetch that fails keeps the last document this process fetched from that URL
//! (and logs why); with none yet, the load fails.

use super::error::FieldError;
use super::model::{Gateway, Upstream, UpstreamKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The largest document read.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// Reads every REST upstream's document and turns it into tools.
pub fn read_all(gateway: &mut Gateway, base: &Path) -> Result<(), FieldError> {
    for (i, u) in gateway.upstreams.iter_mut().enumerate() {
        if u.kind != UpstreamKind::Openapi {
            continue;
        }
        let field = format!("upstreams[{i}].openapi.source");
        let Some(source) = u.openapi.clone() else {
            continue;
        };
        let text = match source.url() {
            Some(url) => fetch_or_last_good(u, url),
            None => {
                let path = base.join(source.source.0.trim());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()));
                if let Some(o) = u.openapi.as_mut() {
                    o.source.0 = path.display().to_string();
                }
                text
            }
        }
        .map_err(|m| FieldError::new(&field, m))?;
        let doc =
            crate::openapi::parse(&text).map_err(|e| FieldError::new(&field, e.to_string()))?;
        u.rest_tools = crate::openapi::tools::tools(&crate::openapi::operations(&doc));
    }
    Ok(())
}

/// The last document fetched from each URL by this process.
static LAST_GOOD: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn fetch_or_last_good(u: &Upstream, url: &str) -> Result<String, String> {
    let mut last = LAST_GOOD.lock().unwrap_or_else(|e| e.into_inner());
    match fetch(u, url) {
        Ok(text) => {
            last.get_or_insert_with(HashMap::new)
                .insert(url.to_string(), text.clone());
            Ok(text)
        }
        Err(e) => match last.as_ref().and_then(|m| m.get(url)) {
            Some(text) => {
                tracing::warn!(
                    upstream = %u.name,
                    "cannot fetch the OpenAPI document {url}: {e}; keeping the last one fetched"
                );
                Ok(text.clone())
            }
            None => Err(format!("cannot fetch {url}: {e}")),
        },
    }
}

/// GET `url` with the upstream's trust (its CA, else the system roots; its client
/// certificate; `insecure_skip_verify`) and timeout, on a thread of its own: loads run both
/// inside and outside the async runtime.
fn fetch(u: &Upstream, url: &str) -> Result<String, String> {
    let tls = u.tls.clone().unwrap_or_default();
    let timeout = u.timeout.max(Duration::from_secs(1));
    let url = url.to_string();
    let run = move || -> Result<String, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Some(ca) = &tls.ca_cert {
            let certs =
                reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            let mut pem = cert.pem.clone();
            pem.extend_from_slice(&key.pem);
            builder =
                builder.identity(reqwest::Identity::from_pem(&pem).map_err(|e| e.to_string())?);
        }
        if tls.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes"));
            }
            String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8 text".to_string())
        })
    };
    std::thread::spawn(run)
        .join()
        .map_err(|_| "the fetch failed".to_string())?
}
