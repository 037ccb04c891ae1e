//! The AMQPS side of `bench/delivery.sh amqps`: a private RabbitMQ (Debian's
//! `rabbitmq-server`, TLS listener, certificates generated here) and a counter.
//!
//! ```text
//! cargo run --release -p picket-tests --example amqp_sink -- DIR EXPECT
//! ```
//!
//! Writes `DIR/env` (shell variables: `AMQPS_URL`, `CA`, `CLIENT_CERT`, `CLIENT_KEY`)
//! once the broker takes connections, then polls the queue the agent publishes to
//! (`eventtask`, bound before the agent starts) until it holds EXPECT messages, writes
//! `DIR/done` and stops the broker. Messages are left unconsumed, so counting costs the
//! broker next to nothing.

use std::time::{Duration, Instant};

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
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let depth = broker.queue_depth("eventtask").unwrap_or(0);
        if depth >= expect {
            std::fs::write(dir.join("done"), format!("{depth}\n")).expect("done file");
            break;
        }
        if Instant::now() >= deadline {
            eprintln!("amqp_sink: {depth} of {expect} messages after 30 minutes");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
