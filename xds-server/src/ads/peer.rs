//! Which Envoy is at the other end of an ADS stream, and whether it may have the
//! configuration: every snapshot carries the session key and upstream credentials, so with
//! `--xds-allow-node` only the named nodes get it, each only over a client certificate that
//! names it (so one Envoy's certificate cannot fetch as another).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names a certificate gives its holder: the subject's common names and its DNS and URI
/// subject alternative names. Nothing for what does not parse.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => names.push((*n).to_string()),
                _ => {}
            }
        }
    }
    names
}

/// Which nodes may fetch the configuration (`--xds-allow-node`); empty: every node that
/// reaches the port (and, with `--xds-client-ca`, shows a certificate from that CA).
#[derive(Debug, Clone, Default)]
pub struct NodePolicy {
    pub allowed: Vec<String>,
}

impl NodePolicy {
    /// Why node `id` may not have the configuration, if it may not. `names`: what its client
    /// certificate names (`None`: it showed none).
    pub fn refuses(&self, id: &str, names: Option<&[String]>) -> Option<String> {
        if self.allowed.is_empty() {
            return None;
        }
        if !self.allowed.iter().any(|a| a == id) {
            return Some(format!(
                "node id {id:?} is not one of --xds-allow-node ({})",
                self.allowed.join(", ")
            ));
        }
        match names {
            None => Some(format!("node {id:?} showed no client certificate")),
            Some(names) if !names.iter().any(|n| n == id) => Some(format!(
                "node {id:?} showed a certificate for {names:?}, which does not name it"
            )),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_names_its_common_name_and_dns_names() {
        let names = certificate_names(&cert("edge-1", &["edge-1.fleet.internal"]));
        assert_eq!(names, ["edge-1", "edge-1.fleet.internal"]);
        assert!(certificate_names(b"not a certificate").is_empty());
    }

    #[test]
    fn only_allowed_nodes_with_a_certificate_naming_them() {
        let open = NodePolicy::default();
        assert_eq!(open.refuses("anyone", None), None);
        let policy = NodePolicy {
            allowed: vec!["edge-1".into()],
        };
        let edge1 = vec!["edge-1".to_string()];
        let edge2 = vec!["edge-2".to_string()];
        assert_eq!(policy.refuses("edge-1", Some(&edge1)), None);
        assert!(policy.refuses("edge-2", Some(&edge2)).is_some());
        assert!(
            policy.refuses("edge-1", Some(&edge2)).is_some(),
            "another node's certificate"
        );
        assert!(policy.refuses("edge-1", None).is_some());
    }
}
