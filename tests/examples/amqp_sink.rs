//! The AMQPS side of `bench/delivery.sh amqps`: a private RabbitMQ (Debian's
//! `rabbitmq-server`, TLS listener, certificates generated here) and a counter.
//!
//! ```text
//! cargo run --release -p picket-tests --example amqp_sink -- DIR EXPECT
//! ```
//!
//! Writes `DIR/env` (shell variables: `AMQPS_URL`, `CA`, `CLIENT_CERT`, `CLIENT_KEY`)
//! once the broker takes connections, then consumes the queue the agent publishes to
//! (`eventtask`, bound before the agent starts) until it has taken EXPECT events (a
//! packed message counts its lines), writes `DIR/done` and stops the broker. Consuming
//! is part of what a queue costs its broker, as it is behind a real collector.

use std::time::Duration;

use picket_tests::pki::Pki;
use picket_tests::rabbitmq::RabbitMq;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(expect)) = (args.next(), args.next()) else {
        eprintln!("usage: amqp_sink DIR EXPECT");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let expect: u32 = expect.parse().expect("EXPECT is a number");
    let pki = Pki::generate(&dir.join("pki"));
    let broker = RabbitMq::start(&dir.join("rabbitmq"), &pki);
    broker.bind(
        "eventtask",
        "eventtask",
        lapin::ExchangeKind::Direct,
        "eventtask",
    );
    let env = format!(
        "AMQPS_URL={:?}\nCA={:?}\nCLIENT_CERT={:?}\nCLIENT_KEY={:?}\n",
        broker.amqps_url(),
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string()
    );
    std::fs::write(dir.join("env"), env).expect("env file");
    let taken = broker.consume_events("eventtask", u64::from(expect), Duration::from_secs(1800));
    if taken < u64::from(expect) {
        eprintln!("amqp_sink: {taken} of {expect} events after 30 minutes");
        std::process::exit(1);
    }
    std::fs::write(dir.join("done"), format!("{taken}\n")).expect("done file");
}
