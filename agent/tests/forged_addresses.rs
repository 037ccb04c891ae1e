//! Client text cannot move the address. A user name, a client's version banner, its
//! disconnect message, its algorithm offer, PAM's `ruser`/`user`: every slot a client
//! (or attacker) fills is given text that looks like the grammar's own peer (` from
//! 10.66.66.66 port 1 ssh2` and its variants; reverse-DNS names and certificate IDs
//! too), in every line of the sshd, PAM and
//! dropbear fixtures, and the event's address must stay what it was.

use std::path::Path;

use chrono::{DateTime, Utc};
use picket_agent::host::HostIdentity;
use picket_agent::parsers::{LineContext, LineParser, TimeZoneChoice};
use proptest::prelude::*;
use serde_json::Value;

const FORGED: &str = "10.66.66.66";

/// Every fixture line of the parsers whose lines carry client text.
fn lines() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut lines = Vec::new();
    for dir in ["sshd", "pam", "dropbear"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|f| f.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from),
            );
        }
    }
    assert!(lines.len() > 80, "fixtures were not found");
    lines
}

/// The event's (sourceipaddress, sourcehostname), each line read alone.
fn address(line: &str) -> (Option<String>, Option<String>, Value) {
    let parser = LineParser::new(
        HostIdentity::named("agent1.example.com"),
        TimeZoneChoice::parse("UTC").unwrap(),
    );
    let read_at: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
    let context = LineContext {
        source: "forged",
        source_identity: "forged",
        offset: 0,
        read_at,
    };
    let event = serde_json::to_value(parser.parse(line.as_bytes(), &context)).unwrap();
    let get = |key: &str| event["details"][key].as_str().map(String::from);
    (get("sourceipaddress"), get("sourcehostname"), event)
}

/// Where client text sits in `line`: after each marker that opens such a slot, and
/// after a typed user name (wherever it occurs past the header), but for pam_unix's
/// account name.
fn slots(line: &str, user: Option<&str>) -> Vec<usize> {
    const MARKERS: [&str; 13] = [
        "Their offer: ",
        // Reverse DNS is the DNS owner's text (an attacker's own PTR records).
        "getaddrinfo for ",
        " maps to ",
        "Nasty PTR record \"",
        "certificate ID \"",
        "identification '",
        " with SSH-",
        "version '",
        "ruser=",
        "user=",
        ":11: ",
        ":3: ",
        "Exception: ",
    ];
    let header_end = line.find("]: ").map_or(0, |at| at + 3);
    let mut at = Vec::new();
    for marker in MARKERS {
        let mut from = header_end;
        while let Some(found) = line[from..].find(marker) {
            at.push(from + found + marker.len());
            from += found + marker.len();
        }
    }
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        let mut from = header_end;
        while let Some(found) = line[from..].find(user) {
            at.push(from + found + user.len());
            from += found + user.len();
        }
    }
    // pam_unix's `  user=` names an existing account (a name without spaces, never
    // the client's text): not a slot. pam_sss and pam_ldap print the typed name there.
    if !line.contains("pam_sss(") && !line.contains("pam_ldap(") {
        if let Some(account) = line.rfind("  user=") {
            at.retain(|&slot| slot < account);
        }
    }
    at.sort_unstable();
    at.dedup();
    at
}

fn payload() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            " from ", " ", "' from ", " from <", ": ", " rhost=", ", ip=", " by ", "\t",
        ]),
        prop::sample::select(vec![
            " port 1 ssh2",
            " port 1",
            ":1",
            ":1>: x",
            "",
            " port 1 ssh2: RSA SHA256:x",
            "  user=x",
            " port 1: Too many authentication failures",
            " port 1 [preauth]",
        ]),
    )
        .prop_map(|(before, after)| format!("{before}{FORGED}{after}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn client_text_never_moves_the_address(payload in payload()) {
        let mut tried = 0;
        for line in lines() {
            let (ip, host, event) = address(&line);
            // A name the client typed (sshd says `invalid user`) is client text; an
            // account's name (a valid user) is not.
            let user = event["details"]["username"]
                .as_str()
                .filter(|_| event["details"]["invaliduser"] == Value::Bool(true))
                .map(String::from);
            for at in slots(&line, user.as_deref()) {
                let forged = format!("{}{payload}{}", &line[..at], &line[at..]);
                let (ip2, host2, _) = address(&forged);
                tried += 1;
                prop_assert!(
                    ip2.as_deref() != Some(FORGED) && host2.as_deref() != Some(FORGED),
                    "the forged address was taken from {forged:?}"
                );
                // A line read with an address keeps it (or, where the slot's text breaks
                // the shape, is left unread: never another address).
                if ip.is_some() || host.is_some() {
                    prop_assert!(
                        (ip2 == ip && host2 == host) || (ip2.is_none() && host2.is_none()),
                        "{line:?} read as {ip:?}/{host:?}, {forged:?} as {ip2:?}/{host2:?}"
                    );
                }
            }
        }
        prop_assert!(tried > 40, "only {tried} slots were tried");
    }
}
