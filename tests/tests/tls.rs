//! HTTPS between real agent and collector processes: certificates made per test, the
//! collector requiring client certificates and a bearer token, the agent checking the
//! collector against a CA file. What a misconfigured agent reads is kept, not lost.

use std::path::Path;
use std::time::Duration;

use picket_tests::pki::{CLIENT_NAME, Pki};
use picket_tests::{Agent, Collector, CollectorOptions, append_lines, assert_exactly_once};

const TOKEN: &str = "fleet-token-0123456789abcdef";

fn https_shipper(collector: &Collector, ca: &Path, client: Option<&Pki>, token: &Path) -> String {
    let mut table = format!(
        "[agent.shippers.http]\nurl = {:?}\ngzip = true\nca_file = {:?}\ntoken_file = {:?}\n",
        collector.events_url(),
        ca.display().to_string(),
        token.display().to_string()
    );
    if let Some(pki) = client {
        table.push_str(&format!(
            "client_cert_file = {:?}\nclient_key_file = {:?}\n",
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string()
        ));
    }
    table
}

#[test]
fn https_with_client_certificates_refuses_strangers_and_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# test fleet\n{TOKEN}\n")).unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            tls: Some(pki.clone()),
            client_certificates: true,
            tokens_file: Some(tokens.clone()),
            ..Default::default()
        },
    );
    let log = dir.path().join("auth.log");
    append_lines(&log, 0, 1_000);
    let agent_dir = dir.path().join("agent");

    // 1. The agent trusts the wrong CA: it refuses the collector's certificate.
    let config = Agent::write_config(
        &agent_dir,
        &[&log],
        "",
        &https_shipper(&collector, &pki.rogue_ca, Some(&pki), &tokens),
    );
    let mut agent = Agent::start_with_config(&agent_dir, config.clone());
    assert!(
        agent.wait_for_log("Delivery failed; retrying", Duration::from_secs(30)),
        "agent log:\n{}",
        agent.service.log()
    );
    assert!(
        agent.service.log().to_lowercase().contains("certificate"),
        "the agent says why: {}",
        agent.service.log()
    );
    assert_eq!(collector.search("*", 10).0, 0);
    assert!(agent.service.stop().is_some_and(|s| s.success()));

    // 2. The right CA but no client certificate: the collector refuses the handshake.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            &https_shipper(&collector, &pki.rogue_ca, Some(&pki), &tokens),
            &https_shipper(&collector, &pki.ca, None, &tokens),
        ),
    )
    .unwrap();
    let mut agent = Agent::start_with_config(&agent_dir, config.clone());
    assert!(
        agent.wait_for_log("Delivery failed; retrying", Duration::from_secs(30)),
        "agent log:\n{}",
        agent.service.log()
    );
    assert_eq!(collector.search("*", 10).0, 0);
    assert!(agent.service.stop().is_some_and(|s| s.success()));

    // 3. Set up right (and heartbeats on): everything read so far, and what follows,
    // arrives once, with the certificate's name recorded.
    let good = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &https_shipper(&collector, &pki.ca, None, &tokens),
            &https_shipper(&collector, &pki.ca, Some(&pki), &tokens),
        )
        .replace("heartbeat_secs = 0", "heartbeat_secs = 1");
    std::fs::write(&config, good).unwrap();
    let agent = Agent::start_with_config(&agent_dir, config);
    append_lines(&log, 1_000, 2_000);
    let (total, hits) =
        collector.wait_for("category:authentication", 2_000, Duration::from_secs(60));
    assert_eq!(total, 2_000, "agent log:\n{}", agent.service.log());
    assert_exactly_once(&hits, 2_000, &agent.service.log());
    assert!(
        hits.iter()
            .all(|h| h["details"]["agentidentity"] == CLIENT_NAME),
        "{}",
        hits[0]
    );
    let (beats, hits) = collector.wait_for("category:heartbeat", 1, Duration::from_secs(30));
    assert!(beats >= 1, "a heartbeat arrives");
    assert_eq!(hits[0]["hostname"], "agent.test.example");
    assert!(hits[0]["details"]["eventsread"].as_u64().is_some());
}
