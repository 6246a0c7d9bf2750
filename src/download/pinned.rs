//! TLS for a peer with a `ca_file`: a certificate of the file that the peer
//! presents exactly is trusted as it is (pinned); any other is verified by
//! webpki with the file's certificates as the only roots.
//!
//! Why: the usual self-signed certificate (`openssl req -x509 ...`) carries
//! `basicConstraints CA:TRUE`, and webpki refuses a CA certificate as an end
//! entity (`CaUsedAsEndEntity`), so a friend's own certificate given as
//! `ca_file` could never be used. A pin is the operator's own decision:
//! the bytes of the peer's certificate are in the file, so its extensions,
//! dates and names are not asked about (ARCHITECTURE.md, "A pinned
//! certificate"). The handshake signature is still checked against the
//! certificate's key, with the crypto provider's algorithms, so only the
//! holder of its private key gets past.
//!
//! How: ureq's `TlsConfig` takes roots but no verifier of our own. So the
//! agent's connector chain (`direct::agent`) runs [`PinnedTls`] before
//! ureq's `RustlsConnector`: for a request whose TLS roots are
//! `RootCerts::Specific` (only a peer's `ca_file` sets them) it makes the
//! TLS connection itself with [`Pinned`] as the verifier; every other https
//! request (the bundled Mozilla roots) passes through to ureq's connector
//! unchanged, and one already wrapped is skipped there (`is_tls`). A rustls
//! config is built per connection, as ureq does for a request-level
//! `TlsConfig`. This module must not decide anything about HTTP.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};
use rustls::{RootCertStore, SignatureScheme, StreamOwned};
use ureq::tls::RootCerts;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Trusts a certificate of `pinned` presented exactly, else what `roots`
/// (webpki, the same certificates as roots, the host name checked) trusts.
#[derive(Debug)]
pub struct Pinned {
    pinned: Vec<CertificateDer<'static>>,
    /// `None` when no certificate of the file can be a root.
    roots: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Pinned {
    /// The verifier for `certs` (a `ca_file`'s certificates, DER).
    pub fn new(certs: Vec<CertificateDer<'static>>, provider: Arc<CryptoProvider>) -> Pinned {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(certs.iter().cloned());
        let algorithms = provider.signature_verification_algorithms;
        // Fails only without a root, which `roots: None` says.
        let roots = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .ok();
        Pinned {
            pinned: certs,
            roots,
            algorithms,
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.roots {
            Some(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The connector for requests with `ca_file` roots (see the module doc).
#[derive(Debug, Default)]
pub struct PinnedTls;

impl<In: Transport> Connector<In> for PinnedTls {
    type Out = Either<In, PinnedTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        let RootCerts::Specific(certs) = details.config.tls_config().root_certs() else {
            return Ok(Some(Either::A(transport)));
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let certs = certs
            .iter()
            .map(|c| CertificateDer::from(c.der()).into_owned())
            .collect();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Pinned::new(certs, provider.clone());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.enable_sni = details.config.tls_config().use_sni();
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host to connect to"))?;
        let name = ServerName::try_from(bare_host(host))
            .map_err(|_| ureq::Error::Tls("invalid host name for tls"))?
            .to_owned();
        let mut conn = ClientConnection::new(Arc::new(config), name)?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        conn.complete_io(&mut socket)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(PinnedTransport {
            buffers,
            stream: StreamOwned::new(conn, socket),
        })))
    }
}

/// A URI's host as a TLS server name: an IPv6 address without its brackets.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A TLS connection made by [`PinnedTls`], as ureq's own rustls transport.
pub struct PinnedTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for PinnedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTransport").finish_non_exhaustive()
    }
}

impl Transport for PinnedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(certs: &[&[u8]]) -> Pinned {
        let certs = certs
            .iter()
            .map(|c| CertificateDer::from(c.to_vec()))
            .collect();
        Pinned::new(certs, Arc::new(rustls::crypto::ring::default_provider()))
    }

    fn verify(v: &Pinned, cert: &[u8], host: &str) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(host).unwrap().to_owned();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        v.verify_server_cert(&CertificateDer::from(cert), &[], &name, &[], now)
    }

    fn self_signed(name: &str) -> Vec<u8> {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        made.cert.der().to_vec()
    }

    #[test]
    fn a_pinned_certificate_is_trusted_for_any_name_another_is_not() {
        let (pinned, other) = (self_signed("friend.example"), self_signed("friend.example"));
        let v = verifier(&[&pinned]);
        assert!(verify(&v, &pinned, "friend.example").is_ok());
        assert!(verify(&v, &pinned, "elsewhere.example").is_ok());
        assert!(verify(&v, &pinned, "192.0.2.1").is_ok());
        let refused = verify(&v, &other, "friend.example").unwrap_err();
        assert!(
            matches!(refused, rustls::Error::InvalidCertificate(_)),
            "{refused}"
        );
    }

    #[test]
    fn a_ca_file_without_a_usable_root_still_pins_and_refuses_the_rest() {
        // Not a certificate: no root can be made of it, yet a peer
        // presenting exactly these bytes would pass the pin.
        let junk = b"not a certificate".as_slice();
        let v = verifier(&[junk]);
        assert!(v.roots.is_none());
        assert!(verify(&v, junk, "friend.example").is_ok());
        let refused = verify(&v, &self_signed("friend.example"), "friend.example").unwrap_err();
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn an_ipv6_host_loses_its_brackets() {
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("[fe80::1]"), "fe80::1");
        assert_eq!(bare_host("nas.example"), "nas.example");
        assert_eq!(bare_host("127.0.0.1"), "127.0.0.1");
    }
}
