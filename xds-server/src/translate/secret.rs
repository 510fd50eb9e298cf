//! Certificates and keys as SDS secrets, pushed over the same ADS stream. Clusters and
//! listeners only name them, so a rotated file changes one secret and nothing else.

use super::ads;
use crate::config::model::{Gateway, PemFile};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;

pub const SERVER_CERT: &str = "switchboard-server-cert";
/// What Envoy shows the bridge on every request ([`switchboard_bridge::INGRESS_HEADER`]).
pub const BRIDGE_INGRESS: &str = "switchboard-bridge-ingress";
pub const SERVER_CLIENT_CA: &str = "switchboard-server-client-ca";
/// The system roots: what HTTPS upstreams without a CA of their own are checked against.
pub const SYSTEM_ROOTS: &str = "switchboard-system-roots";

pub fn upstream_ca(upstream: &str) -> String {
    format!("upstream-{upstream}-ca")
}

pub fn upstream_client_cert(upstream: &str) -> String {
    format!("upstream-{upstream}-client-cert")
}

/// A reference to a secret served by ADS.
pub fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.into(),
        sds_config: Some(ads()),
    }
}

/// Every secret the gateway's clusters and listener name.
pub fn secrets(gateway: &Gateway) -> Vec<tls::Secret> {
    let mut out = Vec::new();
    if let Some(bundle) = &gateway.system_ca {
        out.push(trusted_ca(SYSTEM_ROOTS, bundle));
    }
    if let Some(t) = &gateway.server.tls {
        out.push(certificate(SERVER_CERT, &t.cert_file, &t.key_file));
        if let Some(ca) = &t.client_ca {
            out.push(trusted_ca(SERVER_CLIENT_CA, ca));
        }
    }
    for u in &gateway.upstreams {
        let Some(t) = &u.tls else { continue };
        if let Some(ca) = &t.ca_cert {
            out.push(trusted_ca(&upstream_ca(&u.name), ca));
        }
        if let (Some(cert), Some(key)) = (&t.client_cert, &t.client_key) {
            out.push(certificate(&upstream_client_cert(&u.name), cert, key));
        }
    }
    out
}

/// A secret of Envoy's generic kind (read by filters, such as the credential injector).
pub fn generic(name: &str, value: &str) -> tls::Secret {
    tls::Secret {
        name: name.into(),
        r#type: Some(tls::secret::Type::GenericSecret(tls::GenericSecret {
            secret: Some(core::DataSource {
                specifier: Some(core::data_source::Specifier::InlineString(value.into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

fn bytes(file: &PemFile) -> core::DataSource {
    core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineBytes(file.pem.clone())),
        ..Default::default()
    }
}

fn certificate(name: &str, cert: &PemFile, key: &PemFile) -> tls::Secret {
    tls::Secret {
        name: name.into(),
        r#type: Some(tls::secret::Type::TlsCertificate(tls::TlsCertificate {
            certificate_chain: Some(bytes(cert)),
            private_key: Some(bytes(key)),
            ..Default::default()
        })),
    }
}

pub(super) fn trusted_ca(name: &str, ca: &PemFile) -> tls::Secret {
    tls::Secret {
        name: name.into(),
        r#type: Some(tls::secret::Type::ValidationContext(
            tls::CertificateValidationContext {
                trusted_ca: Some(bytes(ca)),
                ..Default::default()
            },
        )),
    }
}
