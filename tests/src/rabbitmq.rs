//! A private RabbitMQ node for tests, from Debian's `rabbitmq-server`: its own node
//! name, ports (plain AMQP, AMQPS with client certificates required, Erlang
//! distribution), data and log directories and Erlang cookie, so it never meets the
//! machine's own broker. Stopped by PID (SIGTERM to the Erlang VM, a clean shutdown)
//! and restarted on the same directories, keeping durable queues and messages.
//!
//! The one user, `agent-test` (the client certificate's common name), logs in with its
//! password over PLAIN or with its certificate over EXTERNAL.

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use picket_common::amqp::packed;

use crate::free_port;
use crate::pki::{CLIENT_NAME, Pki};

/// Where Debian keeps the scripts that run as the calling user (`/usr/sbin`'s switch to
/// the `rabbitmq` user).
const BIN: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Its control tool, run as the calling user too.
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// The password of [`CLIENT_NAME`].
pub const PASSWORD: &str = "picket-test-password";

/// A running (or stopped) private broker.
pub struct RabbitMq {
    pub dir: PathBuf,
    pub amqp_port: u16,
    pub amqps_port: u16,
    dist_port: u16,
    node: String,
    wrapper: Option<Child>,
}

impl RabbitMq {
    /// Writes the node's configuration under `dir` and starts it; waits until both
    /// listeners accept connections.
    pub fn start(dir: &Path, pki: &Pki) -> RabbitMq {
        RabbitMq::start_with_cookie(dir, pki, &format!("PICKETTEST{}", std::process::id()))
    }

    /// A cluster of `count` nodes under `dir` (`node0`, `node1`, …): started at once,
    /// sharing an Erlang cookie, then each node past the first joined to the first with
    /// `rabbitmqctl join_cluster`, as an operator does.
    pub fn cluster(dir: &Path, pki: &Pki, count: usize) -> Vec<RabbitMq> {
        let cookie = format!("PICKETCLUSTER{}", std::process::id());
        let mut nodes: Vec<RabbitMq> = std::thread::scope(|scope| {
            let started: Vec<_> = (0..count)
                .map(|i| {
                    let dir = dir.join(format!("node{i}"));
                    let cookie = cookie.clone();
                    scope.spawn(move || RabbitMq::start_with_cookie(&dir, pki, &cookie))
                })
                .collect();
            started
                .into_iter()
                .map(|h| h.join().expect("a node started"))
                .collect()
        });
        let first = nodes[0].node.clone();
        for node in &mut nodes[1..] {
            node.ctl(&["stop_app"]);
            node.ctl(&["join_cluster", &first]);
            node.ctl(&["start_app"]);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = nodes[0].ctl(&["cluster_status", "--formatter", "json"]);
            let running = serde_json::from_str::<serde_json::Value>(&status)
                .ok()
                .and_then(|v| v["running_nodes"].as_array().map(|n| n.len()))
                .unwrap_or(0);
            if running == count {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form: {status}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!(
            "rabbitmq cluster of {count} formed: {}",
            nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        nodes
    }

    /// Runs `rabbitmqctl -n <this node> <args>` (with the node's cookie); its output.
    /// Panics when it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new(CTL)
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .env("HOME", self.dir.join("home"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_LIBS")
            .env_remove("RABBITMQ_ENV_LOADED")
            .output()
            .expect("rabbitmqctl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} on {}: {text}{}",
            self.node,
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }

    /// The node's Erlang name (`picket<port>@localhost`).
    pub fn node_name(&self) -> &str {
        &self.node
    }

    fn start_with_cookie(dir: &Path, pki: &Pki, cookie_text: &str) -> RabbitMq {
        assert!(
            Path::new(BIN).exists(),
            "{BIN} is missing: apt-get install rabbitmq-server (.ci/run does)"
        );
        for sub in ["home", "mnesia", "log", "conf.d"] {
            fs::create_dir_all(dir.join(sub)).expect("rabbitmq dirs");
        }
        let cookie = dir.join("home/.erlang.cookie");
        let _ = fs::remove_file(&cookie);
        fs::write(&cookie, cookie_text).expect("cookie");
        set_mode(&cookie, 0o400);
        fs::write(dir.join("rabbitmq-env.conf"), "").expect("env file");
        fs::write(
            dir.join("enabled_plugins"),
            "[rabbitmq_auth_mechanism_ssl].\n",
        )
        .expect("plugins file");
        // Ports picked now can be taken by a parallel test before the node binds them
        // (it then exits with eaddrinuse): pick others and try again.
        for attempt in 1.. {
            let (amqp_port, amqps_port, dist_port) = (free_port(), free_port(), free_port());
            fs::write(
                dir.join("rabbitmq.conf"),
                format!(
                    "listeners.tcp.1 = 127.0.0.1:{amqp_port}
listeners.ssl.1 = 127.0.0.1:{amqps_port}
ssl_options.cacertfile = {ca}
ssl_options.certfile = {cert}
ssl_options.keyfile = {key}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
default_user = {CLIENT_NAME}
default_pass = {PASSWORD}
log.console = false
log.file = rabbit.log
log.file.level = info
",
                    ca = pki.ca.display(),
                    cert = pki.server_cert.display(),
                    key = pki.server_key.display(),
                ),
            )
            .expect("rabbitmq.conf");
            let mut broker = RabbitMq {
                dir: dir.to_path_buf(),
                amqp_port,
                amqps_port,
                dist_port,
                node: format!("picket{amqp_port}@localhost"),
                wrapper: None,
            };
            match broker.try_start() {
                Ok(()) => return broker,
                Err(message) if attempt < 5 && message.contains("eaddrinuse") => {
                    eprintln!("rabbitmq: a port was taken before the node bound it; new ports");
                }
                Err(message) => panic!("{message}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts the node again on its directories (after [`RabbitMq::stop`]).
    pub fn start_again(&mut self) {
        if let Err(message) = self.try_start() {
            panic!("{message}");
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        let dir = &self.dir;
        let _ = fs::remove_file(dir.join("beam.pid"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log/startup.out"))
            .expect("startup log");
        let err = out.try_clone().expect("startup log");
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env("HOME", dir.join("home"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONFIG_FILES", dir.join("conf.d"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("beam.pid"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_LIBS")
            .env_remove("RABBITMQ_ENV_LOADED")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            // Its own process group: the test's signals are not the broker's.
            .process_group(0);
        let started = Instant::now();
        self.wrapper = Some(command.spawn().expect("start rabbitmq-server"));
        let deadline = started + Duration::from_secs(120);
        for port in [self.amqp_port, self.amqps_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(Ok(Some(status))) = self.wrapper.as_mut().map(|c| c.try_wait()) {
                    return Err(format!(
                        "rabbitmq-server exited ({status}):\n{}",
                        self.log()
                    ));
                }
                assert!(
                    Instant::now() < deadline,
                    "rabbitmq did not listen on {port} within 120 s:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        eprintln!(
            "rabbitmq {} ready in {:.1} s (amqp {}, amqps {})",
            self.node,
            started.elapsed().as_secs_f64(),
            self.amqp_port,
            self.amqps_port
        );
        Ok(())
    }

    /// The Erlang VM's PID, from the PID file the node writes.
    pub fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.dir.join("beam.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// SIGTERM to the VM (a clean shutdown) and wait until it is gone.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGKILL to the VM: a crash.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&mut self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID the node wrote; at worst it is gone already.
            unsafe {
                libc::kill(pid, signal);
            }
        }
        if let Some(mut wrapper) = self.wrapper.take() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while matches!(wrapper.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = wrapper.kill();
            let _ = wrapper.wait();
        }
        let _ = fs::remove_file(self.dir.join("beam.pid"));
    }

    /// The broker's logs, for failure messages.
    pub fn log(&self) -> String {
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        let startup = read(self.dir.join("log/startup.out"));
        let main = read(self.dir.join("log/rabbit.log"));
        let tail = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- startup.out ---\n{}\n--- rabbit.log ---\n{}",
            tail(&startup),
            tail(&main)
        )
    }

    /// `amqp://127.0.0.1:<port>/%2f` (no credentials).
    pub fn amqp_url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// `amqps://localhost:<port>/%2f`: the name in the server's certificate.
    pub fn amqps_url(&self) -> String {
        format!("amqps://localhost:{}/%2f", self.amqps_port)
    }
}

/// A message taken from a queue: its body and its string headers.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: Vec<u8>,
    pub headers: std::collections::BTreeMap<String, String>,
}

impl RabbitMq {
    /// A connection and channel over plain AMQP as [`CLIENT_NAME`].
    async fn connect(&self) -> (lapin::Connection, lapin::Channel) {
        let uri = format!(
            "amqp://{CLIENT_NAME}:{PASSWORD}@127.0.0.1:{}/%2f",
            self.amqp_port
        );
        let connection = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .expect("connect to the test broker");
        let channel = connection.create_channel().await.expect("a channel");
        (connection, channel)
    }

    /// Publishes raw bodies to `exchange` with `routing_key` over plain AMQP as
    /// [`CLIENT_NAME`], waiting for the broker's confirms (what a foreign shipper does).
    pub fn publish(&self, exchange: &str, routing_key: &str, bodies: &[&[u8]]) {
        self.publish_as(exchange, routing_key, None, bodies);
    }

    /// [`RabbitMq::publish`] with a `content_type` on every message.
    pub fn publish_as(
        &self,
        exchange: &str,
        routing_key: &str,
        content_type: Option<&str>,
        bodies: &[&[u8]],
    ) {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let mut properties = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(content_type) = content_type {
            properties = properties.with_content_type(content_type.into());
        }
        runtime().block_on(async {
            let (connection, channel) = self.connect().await;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirms");
            let mut confirms = Vec::with_capacity(bodies.len());
            for body in bodies {
                confirms.push(
                    channel
                        .basic_publish(
                            exchange.into(),
                            routing_key.into(),
                            BasicPublishOptions::default(),
                            body,
                            properties.clone(),
                        )
                        .await
                        .expect("publish"),
                );
            }
            for confirm in confirms {
                let confirm = confirm.await.expect("confirm");
                assert!(confirm.is_ack(), "the broker took the message");
            }
            let _ = connection.close(200, "done".into()).await;
        });
    }

    /// Declares the durable `kind` exchange and a durable `queue` bound to it with
    /// `routing_key` (what a consumer such as MozDef's bots sets up before listening).
    pub fn bind(&self, queue: &str, exchange: &str, kind: lapin::ExchangeKind, routing_key: &str) {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        runtime().block_on(async {
            let (connection, channel) = self.connect().await;
            channel
                .exchange_declare(
                    exchange.into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("exchange.declare");
            channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("queue.declare");
            channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("queue.bind");
            let _ = connection.close(200, "done".into()).await;
        });
    }

    /// How many messages `queue` holds; `None` while it does not exist.
    pub fn queue_depth(&self, queue: &str) -> Option<u32> {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::FieldTable;
        runtime().block_on(async {
            let (connection, channel) = self.connect().await;
            let depth = channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .ok()
                .map(|q| q.message_count());
            let _ = connection.close(200, "done".into()).await;
            depth
        })
    }

    /// Consumes `queue` until it has taken `expect` events (a packed message,
    /// `application/x-ndjson`, counts its lines), acknowledging as it goes, or until
    /// `within` passes; returns the events taken. For benches: consuming is part of a
    /// queue's real cost.
    pub fn consume_events(&self, queue: &str, expect: u64, within: Duration) -> u64 {
        use futures_lite::StreamExt as _;
        use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
        runtime().block_on(async {
            let (connection, channel) = self.connect().await;
            channel
                .basic_qos(1000, BasicQosOptions::default())
                .await
                .expect("qos");
            let mut consumer = channel
                .basic_consume(
                    queue.into(),
                    "bench-counter".into(),
                    BasicConsumeOptions::default(),
                    lapin::types::FieldTable::default(),
                )
                .await
                .expect("consume");
            let deadline = tokio::time::Instant::now() + within;
            let (mut events, mut unacked) = (0u64, 0u32);
            while events < expect {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout_at(deadline, consumer.next()).await
                else {
                    break;
                };
                let content_type = delivery.properties.content_type();
                events += if packed::is_packed(content_type.as_ref().map(|t| t.as_str())) {
                    packed::lines(&delivery.data).count() as u64
                } else {
                    1
                };
                unacked += 1;
                if unacked >= 500 || events >= expect {
                    channel
                        .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                    unacked = 0;
                }
            }
            let _ = connection.close(200, "done".into()).await;
            events
        })
    }

    /// Takes every message now in `queue` (acknowledging them).
    pub fn drain(&self, queue: &str) -> Vec<Message> {
        use lapin::options::{BasicAckOptions, BasicGetOptions};
        runtime().block_on(async {
            let (connection, channel) = self.connect().await;
            let mut out = Vec::new();
            while let Some(message) = channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .expect("basic.get")
            {
                let mut headers = std::collections::BTreeMap::new();
                if let Some(table) = message.delivery.properties.headers() {
                    for (key, value) in table.inner() {
                        if let lapin::types::AMQPValue::LongString(text) = value {
                            headers.insert(key.to_string(), text.to_string());
                        }
                    }
                }
                message
                    .delivery
                    .ack(BasicAckOptions::default())
                    .await
                    .expect("ack");
                out.push(Message {
                    body: message.delivery.data.clone(),
                    headers,
                });
            }
            let _ = connection.close(200, "done".into()).await;
            out
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        if self.wrapper.is_some() {
            if std::thread::panicking() {
                eprintln!("----- rabbitmq {} -----\n{}", self.node, self.log());
            }
            self.kill();
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}
