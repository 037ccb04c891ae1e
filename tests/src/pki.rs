//! Certificates for TLS tests, made fresh per test with rcgen: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate (CN `agent-test`)
//! it signed, one it signed that names nobody, and a "rogue" CA with its own client certificate, for the refusals.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files written into a directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing of ours.
    pub rogue_ca: PathBuf,
    /// A client certificate from the rogue CA.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
    /// A client certificate our CA signed that names nobody: no subject CN, no DNS name.
    pub nameless_cert: PathBuf,
    pub nameless_key: PathBuf,
}

/// The common name of the client certificate.
pub const CLIENT_NAME: &str = "agent-test";

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("a key pair");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).expect("CA certificate").pem();
    (params, key, pem)
}

fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("a key pair");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    if !common_name.is_empty() {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("leaf certificate");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// Generates everything into `dir` (created).
    pub fn generate(dir: &Path) -> Pki {
        fs::create_dir_all(dir).expect("pki dir");
        let (ca_params, ca_key, ca_pem) = ca("picket-test-ca");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let (server_pem, server_key) = leaf(
            &issuer,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key) = leaf(
            &issuer,
            CLIENT_NAME,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (rogue_params, rogue_ca_key, rogue_pem) = ca("rogue-ca");
        let rogue_issuer = Issuer::from_params(&rogue_params, &rogue_ca_key);
        let (rogue_cert, rogue_key) = leaf(
            &rogue_issuer,
            CLIENT_NAME,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (nameless_cert, nameless_key) =
            leaf(&issuer, "", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).expect("write a PEM file");
            path
        };
        Pki {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
            rogue_ca: write("rogue-ca.pem", &rogue_pem),
            rogue_cert: write("rogue.pem", &rogue_cert),
            rogue_key: write("rogue.key", &rogue_key),
            nameless_cert: write("nameless.pem", &nameless_cert),
            nameless_key: write("nameless.key", &nameless_key),
        }
    }
}
