//! The certificates of a tunnel domain, as the tunnel proxy's setup CLI makes them: an ECDSA
//! P-256 CA valid five years, and an RSA 4096 server certificate for `*.<domain>` and
//! `<domain>` signed directly by it. Pure: PEM in, PEM out, the time given; the command
//! (`switchboard certs`) does the files.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    RsaKeySize, SanType,
};
use std::time::Duration;
use time::OffsetDateTime;

/// How long the CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// How long a server certificate is valid by default (90 days).
pub const CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid domain {0:?}: give a DNS name such as tunnel.example.com")]
    Domain(String),
    #[error("cannot make the certificate: {0}")]
    Make(#[from] rcgen::Error),
    #[error("the stored CA cannot be read: {0}")]
    Ca(String),
    #[error("the certificate cannot be read: {0}")]
    Read(String),
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn checked_domain(domain: &str) -> Result<String, CertError> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.len() > 253 || !d.contains('.') || !d.split('.').all(label_ok) {
        return Err(CertError::Domain(domain.to_string()));
    }
    Ok(d)
}

fn at(t: OffsetDateTime, plus: Duration) -> OffsetDateTime {
    t + time::Duration::try_from(plus).unwrap_or(time::Duration::MAX)
}

/// A new CA for `domain`.
pub fn new_ca(domain: &str, now: OffsetDateTime) -> Result<Pair, CertError> {
    let domain = checked_domain(domain)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{domain} tunnel CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = at(now, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate for `*.domain` and `domain`, signed by `ca`, valid `validity` from
/// `now`.
pub fn server_cert(
    domain: &str,
    ca: &Pair,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<Pair, CertError> {
    let domain = checked_domain(domain)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::Ca(e.to_string()))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(|e| CertError::Ca(e.to_string()))?;
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("*.{domain}"));
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName(format!("*.{domain}").try_into()?),
        SanType::DnsName(domain.clone().try_into()?),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = at(now, validity);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// How long the certificate in `cert_pem` remains valid after `now` (zero once expired).
pub fn remaining(cert_pem: &str, now: OffsetDateTime) -> Result<Duration, CertError> {
    read(cert_pem, |cert| {
        let end = cert.validity().not_after.to_datetime();
        Duration::try_from(end - now).unwrap_or(Duration::ZERO)
    })
}

/// Runs `f` on the certificate in `cert_pem`.
fn read<R>(
    cert_pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> R,
) -> Result<R, CertError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| CertError::Read(e.to_string()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| CertError::Read(e.to_string()))?;
    Ok(f(&cert))
}

/// The names a certificate is for (its DNS SANs).
pub fn dns_names(cert_pem: &str) -> Result<Vec<String>, CertError> {
    read(cert_pem, |cert| {
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push(d.to_string());
                }
            }
        }
        names
    })
}

/// A `kubernetes.io/tls` Secret with the server certificate, its key and the CA
/// certificate, and beside it an Opaque Secret `<name>-ca` with the CA and its key (what
/// `renew-cert` reads back), as one YAML stream for `kubectl apply -f`.
pub fn k8s_manifest(name: &str, ca: &Pair, server: &Pair) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-ca\ntype: Opaque\ndata:\n  ca.crt: {}\n  ca.key: {}\n",
        b64(&server.cert_pem),
        b64(&server.key_pem),
        b64(&ca.cert_pem),
        b64(&ca.cert_pem),
        b64(&ca.key_pem),
    )
}

/// The CA and the server certificate back from a manifest [`k8s_manifest`] wrote.
pub fn from_k8s_manifest(text: &str) -> Result<(Pair, Pair), CertError> {
    use base64::Engine;
    let mut values = std::collections::HashMap::new();
    let mut doc = 0;
    for line in text.lines() {
        if line.trim() == "---" {
            doc += 1;
            continue;
        }
        if let Some((k, v)) = line.trim().split_once(": ")
            && matches!(k, "tls.crt" | "tls.key" | "ca.crt" | "ca.key")
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|e| CertError::Read(format!("{k}: {e}")))?;
            let text =
                String::from_utf8(bytes).map_err(|e| CertError::Read(format!("{k}: {e}")))?;
            values.insert((doc, k.to_string()), text);
        }
    }
    let mut get = |doc: usize, k: &str| {
        values.remove(&(doc, k.to_string())).ok_or_else(|| {
            CertError::Read(format!(
                "the manifest has no {k} (written by `switchboard certs init`?)"
            ))
        })
    };
    let server = Pair {
        cert_pem: get(0, "tls.crt")?,
        key_pem: get(0, "tls.key")?,
    };
    let ca = Pair {
        cert_pem: get(1, "ca.crt")?,
        key_pem: get(1, "ca.key")?,
    };
    Ok((ca, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_signs_a_wildcard_server_certificate_and_its_remaining_time_is_read() {
        let now = OffsetDateTime::now_utc();
        let ca = new_ca("Tunnel.Example.com.", now).unwrap();
        let server = server_cert("tunnel.example.com", &ca, now, CERT_VALIDITY).unwrap();
        assert_eq!(
            dns_names(&server.cert_pem).unwrap(),
            ["*.tunnel.example.com", "tunnel.example.com"]
        );
        let left = remaining(&server.cert_pem, now).unwrap();
        assert!(left > CERT_VALIDITY - Duration::from_secs(60) && left <= CERT_VALIDITY);
        let manifest = k8s_manifest("tunnel-tls", &ca, &server);
        let (ca2, server2) = from_k8s_manifest(&manifest).unwrap();
        assert_eq!(
            (ca2.key_pem, server2.cert_pem),
            (ca.key_pem, server.cert_pem)
        );
        assert!(matches!(
            new_ca("not a domain", now),
            Err(CertError::Domain(_))
        ));
        assert!(matches!(
            new_ca("localhost", now),
            Err(CertError::Domain(_))
        ));
    }
}
