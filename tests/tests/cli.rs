//! `picket-collector search` against a collector that serves HTTPS and wants tokens:
//! the token and the CA come from the flags, the environment or the config's
//! `[collector.cli]`, in that order.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use picket_tests::pki::Pki;
use picket_tests::{Collector, CollectorOptions, binary};

const SHIPPER: &str = "shipper-token-0123456789";
const READER: &str = "reader-token-0123456789";

fn search(config: &Path, envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(binary("picket-collector"));
    command
        .arg("--config")
        .arg(config)
        .args(["search", "*"])
        .env_remove("PICKET_TOKEN")
        .env_remove("PICKET_TOKEN_FILE");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("picket-collector runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn search_reads_its_token_and_ca_from_the_cli_table() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("pki"));
    let tokens = dir.path().join("tokens");
    fs::write(&tokens, format!("{SHIPPER}\n{READER} reader\n")).unwrap();
    let collector = Collector::start_with(
        &dir.path().join("collector"),
        &CollectorOptions {
            tls: Some(pki.clone()),
            tokens_file: Some(tokens),
            ..Default::default()
        },
    );
    let ca = fs::read(&pki.ca).unwrap();
    let sender = reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .build()
        .unwrap();
    let sent = sender
        .post(collector.events_url())
        .bearer_auth(SHIPPER)
        .body(r#"{"summary":"via https","hostname":"cli1","timestamp":"2026-12-01T10:00:00Z"}"#)
        .send()
        .unwrap();
    assert_eq!(sent.status().as_u16(), 200);
    // Answered once logged; searchable once indexed, within a commit interval.
    assert_eq!(
        collector
            .wait_for("summary:\"via https\"", 1, Duration::from_secs(10))
            .0,
        1
    );

    let reader_file = dir.path().join("reader.token");
    fs::write(&reader_file, format!("# the analysts' token\n{READER}\n")).unwrap();
    let shipper_file = dir.path().join("shipper.token");
    fs::write(&shipper_file, format!("{SHIPPER}\n")).unwrap();

    // A config of its own, away from the collector: url, token and CA in [collector.cli].
    let remote = dir.path().join("remote.toml");
    let cli_table = |url: &str| {
        format!(
            "[collector.cli]\n{url}token_file = {:?}\nca_file = {:?}\n",
            reader_file.display().to_string(),
            pki.ca.display().to_string()
        )
    };
    fs::write(
        &remote,
        cli_table(&format!("url = {:?}\n", collector.base_url)),
    )
    .unwrap();
    let output = search(&remote, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 of 1"), "{}", stderr(&output));

    // The collector's own config with a drop-in: the URL is its listen address, https.
    let dropins = collector.config.with_extension("d");
    fs::create_dir_all(&dropins).unwrap();
    fs::write(dropins.join("cli.toml"), cli_table("")).unwrap();
    let output = search(&collector.config, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("1 of 1"), "{}", stderr(&output));

    // PICKET_TOKEN_FILE wins over the config: a shipper token may not search.
    let output = search(&remote, &[("PICKET_TOKEN_FILE", &shipper_file)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("403"), "{}", stderr(&output));

    // Without a token: 401, said plainly.
    let bare = dir.path().join("bare.toml");
    fs::write(
        &bare,
        format!(
            "[collector]\ndata_dir = \"/nonexistent\"\n[collector.cli]\nurl = {:?}\nca_file = {:?}\n",
            collector.base_url,
            pki.ca.display().to_string()
        ),
    )
    .unwrap();
    let output = search(&bare, &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("401"), "{}", stderr(&output));
}
