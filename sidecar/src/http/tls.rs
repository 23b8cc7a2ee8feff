//! HTTPS: the certificate chain and key from PEM files, served with rustls
//! on the `ring` provider. Every start-up error names the file at fault.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Builds the TLS acceptor from `--tls-cert` and `--tls-key`. Offers
/// HTTP/2 (a page may hold many streams to one sidecar) and HTTP/1.1.
pub fn load(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let text = |p: &Path, flag: &str| {
        std::fs::read(p).map_err(|e| format!("cannot read {flag} {}: {e}", p.display()))
    };
    let cert_pem = text(cert, "--tls-cert")?;
    let key_pem = text(key, "--tls-key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "--tls-cert {}: not a PEM certificate file: {e}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no `-----BEGIN CERTIFICATE-----` block in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "--tls-key {}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}",
            key.display()
        )
    })?;
    // `ring`, not aws-lc (no C toolchain or cmake needed to build it);
    // rustls deprecates it only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "--tls-key {} does not belong to the certificate in --tls-cert {}",
                key.display(),
                cert.display()
            ),
            e => format!(
                "--tls-cert {} / --tls-key {}: {e}",
                cert.display(),
                key.display()
            ),
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("mw-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let err = |c: &Path, k: &Path| load(c, k).err().unwrap_or_default();
        let e = err(&dir.join("missing.pem"), &junk);
        assert!(e.contains("--tls-cert") && e.contains("missing.pem"), "{e}");
        let e = err(&junk, &junk);
        assert!(e.contains("--tls-cert") && e.contains("junk.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
