//! Real OpenSearch nodes for tests: OpenSearch 2.19.6 from Maven Central, started
//! in-process by the small Maven project in `tests/opensearch/` (its one class,
//! `TestNode`, embeds the server with the Netty transport, painless and the common
//! analyzers). The project is built once with `mvn -q package` under
//! `target/picket-opensearch/` and rebuilt only when its sources change.
//!
//! Each node is a JVM of its own on loopback ports picked here, with its own home and
//! data directories, a 512 MiB heap, and the disk watermarks off (a nearly full build
//! machine must not turn indices read-only). One node is `discovery.type=single-node`;
//! a cluster's nodes seed from each other and all are eligible cluster managers. Nodes
//! are stopped by PID: SIGKILL for a crash, SIGTERM for a clean close; a stopped node
//! starts again on its directories and ports.
//!
//! Needs a JDK (17) and Maven on `PATH`, with Maven Central reachable (`.ci/run`
//! installs `maven` and `openjdk-17-jdk-headless` when missing).

use std::fs;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Service, free_port, http, target_dir, workspace_root};

/// The OpenSearch version the Maven project pins.
pub const VERSION: &str = "2.19.6";

/// What the node prints on standard output once it has started.
const READY: &str = "PICKET-OPENSEARCH-READY";

/// The Java classpath of the built test node (building it first when its sources
/// changed since the last build).
fn classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        let project = workspace_root().join("tests/opensearch");
        let out = target_dir().join("picket-opensearch");
        fs::create_dir_all(&out).expect("target/picket-opensearch");
        // One build at a time across test processes too.
        let lock = fs::File::create(out.join(".lock")).expect("build lock");
        // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let sources = [
            project.join("pom.xml"),
            project.join("src/main/java/dev/picket/opensearch/TestNode.java"),
        ];
        let wanted: String = sources
            .iter()
            .map(|p| fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect();
        let stamp = out.join("picket-built");
        let jar = out.join("picket-opensearch-node-1.jar");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) || !jar.exists() {
            // copy-dependencies never deletes: a version bump would leave the old
            // jars on the classpath beside the new.
            for stale in ["lib", "classes"] {
                let _ = fs::remove_dir_all(out.join(stale));
            }
            let started = Instant::now();
            let output = Command::new("mvn")
                .args(["-q", "-B", "-f"])
                .arg(project.join("pom.xml"))
                .arg(format!("-Dpicket.build.dir={}", out.display()))
                .arg("package")
                .output()
                .expect(
                    "mvn runs (the OpenSearch tests need Maven and a JDK 17: \
                     apt-get install maven openjdk-17-jdk-headless; .ci/run does)",
                );
            assert!(
                output.status.success(),
                "mvn package of tests/opensearch failed (Maven Central must be reachable):\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            fs::write(&stamp, &wanted).expect("build stamp");
            eprintln!(
                "opensearch: test node built in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        format!("{}:{}/lib/*", jar.display(), out.display())
    })
}

/// One node: its directories, ports and (while it runs) its JVM.
pub struct OpenSearchNode {
    pub name: String,
    pub home: PathBuf,
    pub http_port: u16,
    pub transport_port: u16,
    /// Settings beyond the node's own (discovery).
    discovery: Vec<String>,
    service: Option<Service>,
    /// How many times it was launched, and when last.
    starts: u32,
    started: Instant,
}

impl OpenSearchNode {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The JVM's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.service.as_ref().and_then(Service::pid)
    }

    pub fn running(&mut self) -> bool {
        self.service.as_mut().is_some_and(Service::running)
    }

    /// The node's output so far (its log goes to standard error).
    pub fn log(&self) -> String {
        self.service.as_ref().map(Service::log).unwrap_or_default()
    }

    /// Starts the JVM; [`Self::await_ready`] waits for it. Each start logs to a file
    /// of its own (`node-1.log`, `node-2.log` after a restart, ...).
    fn launch(&mut self) {
        let mut command = Command::new("java");
        command
            .args(["-Xms512m", "-Xmx512m", "-XX:+UseSerialGC"])
            .arg(format!(
                "-Djava.io.tmpdir={}",
                self.home.join("tmp").display()
            ))
            .arg("-cp")
            .arg(classpath())
            .arg("dev.picket.opensearch.TestNode")
            .arg(format!("path.home={}", self.home.display()))
            .arg(format!("path.data={}", self.home.join("data").display()))
            .arg(format!("path.logs={}", self.home.join("logs").display()))
            .arg(format!("node.name={}", self.name))
            .arg("cluster.name=picket-test")
            .arg("network.host=127.0.0.1")
            .arg(format!("http.port={}", self.http_port))
            .arg(format!("transport.port={}", self.transport_port))
            .arg("cluster.routing.allocation.disk.threshold_enabled=false")
            .arg("action.auto_create_index=true")
            .args(&self.discovery);
        fs::create_dir_all(self.home.join("tmp")).expect("node tmp dir");
        self.starts += 1;
        let log = self.home.join(format!("node-{}.log", self.starts));
        self.started = Instant::now();
        self.service = Some(Service::spawn("opensearch", command, log));
    }

    /// Waits until the launched node has started (not for the cluster); `Err` with
    /// its log when it exited first (a port taken, say).
    fn await_ready(&mut self) -> Result<(), String> {
        let deadline = self.started + Duration::from_secs(180);
        let service = self.service.as_mut().expect("a launched node");
        while !service.log().contains(READY) {
            if !service.running() {
                let log = service.log();
                self.service = None;
                return Err(log);
            }
            assert!(
                Instant::now() < deadline,
                "OpenSearch node {} did not start within 180 s:\n{}",
                self.name,
                service.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "opensearch {} started in {:.1} s (http {}, transport {})",
            self.name,
            self.started.elapsed().as_secs_f64(),
            self.http_port,
            self.transport_port
        );
        Ok(())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut service) = self.service.take() {
            service.kill();
        }
    }

    /// SIGTERM: a clean close.
    pub fn stop(&mut self) {
        if let Some(mut service) = self.service.take() {
            service.stop();
        }
    }
}

/// One node or a cluster of them.
pub struct OpenSearch {
    pub nodes: Vec<OpenSearchNode>,
    /// One client for every request the harness makes (each builds a runtime).
    client: reqwest::blocking::Client,
}

impl OpenSearch {
    /// A single-node cluster under `dir`, green before it returns.
    pub fn start(dir: &Path) -> OpenSearch {
        OpenSearch::cluster(dir, 1)
    }

    /// `count` nodes under `dir` forming one cluster, every node in it and its health
    /// at least yellow before it returns.
    pub fn cluster(dir: &Path, count: usize) -> OpenSearch {
        for attempt in 1.. {
            let mut nodes: Vec<OpenSearchNode> = (0..count)
                .map(|i| OpenSearchNode {
                    name: format!("node-{i}"),
                    home: dir.join(format!("node-{i}")),
                    http_port: free_port(),
                    transport_port: free_port(),
                    discovery: Vec::new(),
                    service: None,
                    starts: 0,
                    started: Instant::now(),
                })
                .collect();
            let seeds: Vec<String> = nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.transport_port))
                .collect();
            let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
            for node in &mut nodes {
                node.discovery = if count == 1 {
                    vec!["discovery.type=single-node".into()]
                } else {
                    vec![
                        format!("discovery.seed_hosts={}", seeds.join(",")),
                        format!("cluster.initial_cluster_manager_nodes={}", names.join(",")),
                    ]
                };
            }
            // All at once: a cluster's first node waits for the others to elect a
            // cluster manager before it says it has started.
            for node in &mut nodes {
                node.launch();
            }
            let mut failed = None;
            for node in &mut nodes {
                if let Err(log) = node.await_ready() {
                    failed = Some((node.name.clone(), log));
                    break;
                }
            }
            match failed {
                None => {
                    let cluster = OpenSearch {
                        nodes,
                        client: http(),
                    };
                    cluster.wait_for_health("yellow", count);
                    return cluster;
                }
                Some((_, log)) if attempt < 4 && port_taken(&log) => {
                    eprintln!("opensearch: a port was taken before a node bound it; new ports");
                    for node in &mut nodes {
                        node.kill();
                    }
                    let _ = fs::remove_dir_all(dir);
                }
                Some((name, log)) => panic!("OpenSearch node {name} exited:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The URLs of every node, running or not (a collector's `urls`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(OpenSearchNode::url).collect()
    }

    /// The URL of the first node that runs.
    pub fn url(&mut self) -> String {
        self.nodes
            .iter_mut()
            .find_map(|n| n.running().then(|| n.url()))
            .expect("a running OpenSearch node")
    }

    /// Starts node `i` again on its directories and ports.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.kill();
        node.launch();
        if let Err(log) = node.await_ready() {
            panic!("OpenSearch node {} did not start again:\n{log}", node.name);
        }
    }

    /// Waits until `nodes` nodes are in the cluster and its health is `status` (or
    /// better).
    pub fn wait_for_health(&self, status: &str, nodes: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let path = format!(
                "/_cluster/health?wait_for_status={status}&wait_for_nodes={nodes}&timeout=10s"
            );
            if let Some((200, health)) = self.try_request("GET", &path, None)
                && health["timed_out"] == false
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the OpenSearch cluster did not reach {status} with {nodes} nodes in 180 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// One request to the first node that answers; `None` when none does.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        for node in &self.nodes {
            if node.service.is_none() {
                continue;
            }
            let url = format!("{}{path}", node.url());
            let mut request = self
                .client
                .request(method.parse().expect("an HTTP method"), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Ok(response) = request.send() {
                let status = response.status().as_u16();
                let value = response.json().unwrap_or(Value::Null);
                return Some((status, value));
            }
        }
        None
    }

    /// One REST request (to the first node that answers): status and JSON answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("no OpenSearch node answered {method} {path}"))
    }

    /// `GET path`, which must answer 200.
    pub fn get(&self, path: &str) -> Value {
        let (status, answer) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {answer}");
        answer
    }

    /// Makes everything indexed so far searchable (`POST /_refresh`); while a lost
    /// node's shards fail over some copies refuse (503), so this tries for up to 60 s
    /// until every shard copy has refreshed.
    pub fn refresh(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, answer) = self.request("POST", "/_refresh", None);
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "refresh: {answer}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every document of the indices matching `pattern`, refreshed first: (index, id,
    /// source), by index then id (10,000 a page, all pages).
    pub fn documents(&self, pattern: &str) -> Vec<(String, String, Value)> {
        self.documents_with(pattern, &[])
    }

    /// [`Self::documents`] with only the `fields` of each source (all when empty).
    pub fn documents_with(&self, pattern: &str, fields: &[&str]) -> Vec<(String, String, Value)> {
        self.refresh();
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = serde_json::json!({
                "size": 10_000,
                "query": { "match_all": {} },
                "sort": [{ "_index": "asc" }, { "_id": "asc" }],
            });
            if let Some(after) = &after {
                body["search_after"] = after.clone();
            }
            if !fields.is_empty() {
                body["_source"] = serde_json::json!(fields);
            }
            let (status, answer) = self.request(
                "POST",
                &format!("/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
                Some(&body),
            );
            assert_eq!(status, 200, "search {pattern}: {answer}");
            assert_eq!(answer["_shards"]["failed"], 0, "a partial answer: {answer}");
            let hits = answer["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() {
                return out;
            }
            after = hits.last().map(|h| h["sort"].clone());
            for hit in hits {
                out.push((
                    hit["_index"].as_str().unwrap_or_default().to_string(),
                    hit["_id"].as_str().unwrap_or_default().to_string(),
                    hit["_source"].clone(),
                ));
            }
        }
    }

    /// What `POST /<pattern>/_count` says for `query` (a query DSL object), after a
    /// refresh (a partial one while a lost node's shards fail over: a count to watch
    /// progress by, not to assert exactness with; [`Self::documents`] is exact).
    pub fn count(&self, pattern: &str, query: &Value) -> u64 {
        let _ = self.request("POST", "/_refresh", None);
        let (status, answer) = self.request(
            "POST",
            &format!("/{pattern}/_count?ignore_unavailable=true&allow_no_indices=true"),
            Some(&serde_json::json!({ "query": query })),
        );
        if status >= 500 {
            return 0;
        }
        assert_eq!(status, 200, "count {pattern}: {answer}");
        answer["count"].as_u64().expect("count")
    }
}

/// Whether a node's log says it could not bind a port.
fn port_taken(log: &str) -> bool {
    log.contains("BindException")
        || log.contains("Address already in use")
        || log.contains("BindTransportException")
        || log.contains("BindHttpException")
}

/// `POST <url>/_refresh` from async code (the alert tests run on tokio).
pub async fn refresh_async(url: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/_refresh", url.trim_end_matches('/')))
        .send()
        .await
        .expect("refresh");
    assert!(
        response.status().is_success(),
        "refresh answered {}",
        response.status()
    );
}
