//! The certificate files a gateway names: read at load (so a missing or broken file is a
//! config error, not an Envoy NACK later) and checked: PEM that parses, a key that matches
//! its certificate. What passes travels to Envoy by SDS.

use super::error::{FieldError, ValueError};
use super::model::{Gateway, PemFile};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Reads every PEM file `gateway` names (relative paths from `base`) and checks them.
pub fn read_all(gateway: &mut Gateway, base: &Path) -> Result<(), FieldError> {
    if let Some(bundle) = &mut gateway.system_ca {
        read(bundle, base, "tls.system_ca_file", Kind::Certs)?;
    }
    if let Some(t) = &mut gateway.server.tls {
        read(&mut t.cert_file, base, "server.tls.cert_file", Kind::Certs)?;
        read(&mut t.key_file, base, "server.tls.key_file", Kind::Key)?;
        check_pair(&t.cert_file.pem, &t.key_file.pem)
            .map_err(|m| FieldError::new("server.tls.key_file", m.0))?;
        if let Some(ca) = &mut t.client_ca {
            read(ca, base, "server.tls.client_ca", Kind::Certs)?;
        }
    }
    for (i, c) in gateway
        .auth
        .iter_mut()
        .flat_map(|a| a.clients.iter_mut())
        .enumerate()
    {
        if let Some(file) = c.jwt.as_mut().and_then(|j| j.jwks.file.as_mut()) {
            read(
                file,
                base,
                &format!("auth.clients[{i}].jwt.jwks.file"),
                Kind::Jwks,
            )?;
        }
    }
    if let Some(o) = gateway.auth.as_mut().and_then(|a| a.oauth.as_mut()) {
        for (i, a) in o.authorization_servers.iter_mut().enumerate() {
            if let Some(file) = a.jwks.as_mut().and_then(|j| j.file.as_mut()) {
                let field = format!("auth.oauth.authorization_servers[{i}].jwks.file");
                read(file, base, &field, Kind::Jwks)?;
            }
        }
    }
    for (i, u) in gateway.upstreams.iter_mut().enumerate() {
        if let Some(k) = u
            .auth
            .token_exchange
            .as_mut()
            .and_then(|te| te.private_key.as_mut())
        {
            let field = format!("upstreams[{i}].auth.token_exchange.private_key.file");
            read(&mut k.file, base, &field, Kind::Key)?;
            crate::translate::oauth::signing_key(&k.file.pem)
                .map_err(|m| FieldError::new(field, m))?;
        }
    }
    if let Some(ca) = gateway.hosts.as_mut().and_then(|h| h.ca_file.as_mut()) {
        read(ca, base, "upstream.tls.ca_file", Kind::Certs)?;
    }
    for (i, u) in gateway.upstreams.iter_mut().enumerate() {
        let Some(tls) = &mut u.tls else { continue };
        let field = |f: &str| format!("upstreams[{i}].tls.{f}");
        if let Some(ca) = &mut tls.ca_cert {
            read(ca, base, &field("ca_cert"), Kind::Certs)?;
        }
        if let (Some(cert), Some(key)) = (&mut tls.client_cert, &mut tls.client_key) {
            read(cert, base, &field("client_cert"), Kind::Certs)?;
            read(key, base, &field("client_key"), Kind::Key)?;
            check_pair(&cert.pem, &key.pem)
                .map_err(|m| FieldError::new(field("client_key"), m.0))?;
        }
    }
    Ok(())
}

enum Kind {
    Certs,
    Key,
    Jwks,
}

fn read(file: &mut PemFile, base: &Path, field: &str, kind: Kind) -> Result<(), FieldError> {
    let path = base.join(&file.path);
    let fail = |message: String| FieldError::new(field, message);
    let pem =
        std::fs::read(&path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    match kind {
        Kind::Certs => certificates(&pem).map(|_| ()),
        Kind::Key => key(&pem).map(|_| ()),
        Kind::Jwks => serde_json::from_slice::<serde_json::Value>(&pem)
            .ok()
            .filter(|v| v["keys"].is_array())
            .map(|_| ())
            .ok_or_else(|| ValueError("not a JWKS (a JSON object with \"keys\")".into())),
    }
    .map_err(|m| fail(format!("{}: {m}", path.display())))?;
    file.path = path;
    file.pem = pem;
    Ok(())
}

/// Every certificate in a PEM file; at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ValueError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ValueError(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(ValueError(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ValueError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| ValueError(format!("holds no usable PEM private key ({e})")))
}

/// The key is the private half of the first certificate's public key.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), ValueError> {
    let certs = certificates(cert_pem)?;
    let key = key(key_pem)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ValueError(format!("the private key cannot be used: {e}")))?;
    rustls::sign::CertifiedKey::new(certs, signing)
        .keys_match()
        .map_err(|_| ValueError("the private key does not match the certificate".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_key_must_match_its_certificate() {
        let (cert, key) = pair();
        let (_, other_key) = pair();
        assert_eq!(check_pair(cert.as_bytes(), key.as_bytes()), Ok(()));
        assert_eq!(
            check_pair(cert.as_bytes(), other_key.as_bytes()),
            Err(ValueError(
                "the private key does not match the certificate".into()
            ))
        );
        assert!(
            check_pair(b"junk", key.as_bytes())
                .unwrap_err()
                .0
                .contains("no PEM certificate")
        );
        assert!(
            check_pair(cert.as_bytes(), cert.as_bytes())
                .unwrap_err()
                .0
                .contains("no usable PEM private key")
        );
    }
}
