//! The serving certificate is renewed before it expires and served to new connections without
//! a restart: a server whose certificates live 9 seconds keeps answering well past that.

mod auth_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

/// The certificate the server presents to a new connection (verified against the cluster CA).
async fn presented_certificate(url: &str, ca_pem: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("a TLS handshake that verifies against the cluster CA");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn serving_certificate_is_renewed_without_a_restart() {
    let s = auth_support::start_with(|_, config| {
        config.serving_cert_validity = Duration::from_secs(9);
    })
    .await;
    let first = presented_certificate(&s.url, &s.ca_pem).await;
    let started = Instant::now();
    // Renewed with a third of its life left (after ~6 s), then again every ~6 s.
    let mut seen = vec![first.clone()];
    while started.elapsed() < Duration::from_secs(15) || seen.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the serving certificate was renewed only {} times in 60 s",
            seen.len() - 1
        );
        let now = presented_certificate(&s.url, &s.ca_pem).await;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Well past the first certificate's expiry, new clients still connect and are served.
    let client = s.user("renewal-checker", &["system:masters"]).await;
    let namespaces = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
        .expect("a request well past the first certificate's expiry");
    assert!(
        namespaces
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    let on_disk = std::fs::read_to_string(s.data_dir.join("tls/serving.crt")).unwrap();
    let der = rustls_pemfile::certs(&mut on_disk.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        der.to_vec(),
        presented_certificate(&s.url, &s.ca_pem).await,
        "the renewed certificate is written to tls/serving.crt"
    );
}
