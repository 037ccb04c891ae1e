//! Real syslog daemons as senders: a private rsyslogd (Debian's, with
//! `rsyslog-elasticsearch`) and a private syslog-ng (Debian's 3.38, unpacked under
//! `target/picket-syslog-ng/` from its packages, since installing it would remove
//! rsyslog), each reading one Unix socket of its own that `logger -u` writes to, and
//! sending with the actions a test gives.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::sshd::{RSYSLOGD, log_file, wait_until};

/// A daemon reading `socket`; killed on drop.
pub struct Daemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Logs `message` as `tag[pid]` with `logger`, to this daemon's socket.
    pub fn log(&self, tag: &str, pid: u32, message: &str) {
        let status = Command::new("logger")
            .arg("--socket-errors=on")
            .arg("-u")
            .arg(&self.socket)
            .arg("-d")
            .args(["-t", &format!("{tag}[{pid}]"), "-p", "auth.info", "--"])
            .arg(message)
            .status()
            .expect("logger runs");
        assert!(status.success(), "logger failed");
    }

    /// What the daemon wrote to its stderr.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts rsyslogd under `dir` with `actions` (RainerScript) after its input.
pub fn rsyslogd(dir: &Path, actions: &str) -> Daemon {
    assert!(
        Path::new(RSYSLOGD).exists(),
        "{RSYSLOGD} is missing: apt-get install rsyslog rsyslog-elasticsearch (.ci/run does)"
    );
    fs::create_dir_all(dir).expect("rsyslog dir");
    let socket = dir.join("log.sock");
    let conf = dir.join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{socket}\" CreatePath=\"on\")\n\
             {actions}\n",
            dir = dir.display(),
            socket = socket.display(),
        ),
    )
    .expect("rsyslog.conf");
    let log = dir.join("rsyslogd.out");
    let child = Command::new(RSYSLOGD)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(log_file(&log))
        .spawn()
        .expect("rsyslogd starts");
    wait_until(Duration::from_secs(20), "rsyslogd's socket", || {
        socket.exists()
    });
    Daemon {
        dir: dir.to_path_buf(),
        socket,
        child,
        log,
    }
}

/// The Debian packages syslog-ng needs that a machine with rsyslog lacks.
const SYSLOG_NG_PACKAGES: [&str; 9] = [
    "syslog-ng-core",
    "syslog-ng-mod-http",
    "syslog-ng-mod-amqp",
    "syslog-ng-scl",
    "libivykis0",
    "libnet1",
    "librabbitmq4",
    "libpcre3",
    "libjson-c5",
];

/// syslog-ng's files, unpacked once from Debian's packages (`apt-get download`).
fn syslog_ng_root() -> PathBuf {
    let target = crate::target_dir();
    let base = target.join("picket-syslog-ng");
    let root = base.join("root");
    let marker = base.join("unpacked");
    if marker.exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&base);
    let debs = base.join("debs");
    fs::create_dir_all(&debs).expect("syslog-ng dir");
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(SYSLOG_NG_PACKAGES)
            .current_dir(&debs)
            .output()
            .expect("apt-get runs")
    };
    let mut output = download();
    if !output.status.success() {
        // Package lists missing or stale (a fresh machine): read them, try again.
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        output = download();
    }
    assert!(
        output.status.success(),
        "apt-get download {SYSLOG_NG_PACKAGES:?} failed (Debian's archive must be reachable):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for deb in fs::read_dir(&debs).expect("debs") {
        let deb = deb.expect("a deb").path();
        let status = Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .status()
            .expect("dpkg runs");
        assert!(status.success(), "dpkg -x {} failed", deb.display());
    }
    fs::write(&marker, "").expect("marker");
    root
}

/// Starts syslog-ng under `dir` with `destinations` (its config language, each
/// destination named; the SCL's `elasticsearch-http()` is included) fed by the socket.
pub fn syslog_ng(dir: &Path, destinations: &str, names: &[&str]) -> Daemon {
    let root = syslog_ng_root();
    fs::create_dir_all(dir).expect("syslog-ng dir");
    let socket = dir.join("log.sock");
    let conf = dir.join("syslog-ng.conf");
    let logs: String = names
        .iter()
        .map(|name| format!(" destination({name});"))
        .collect();
    fs::write(
        &conf,
        format!(
            "@version: 3.38\n\
             @include \"{scl}/elasticsearch/elastic-http.conf\"\n\
             options {{ keep-hostname(yes); }};\n\
             source s_test {{ unix-dgram(\"{socket}\"); }};\n\
             {destinations}\n\
             log {{ source(s_test);{logs} }};\n",
            scl = root.join("usr/share/syslog-ng/include/scl").display(),
            socket = socket.display(),
        ),
    )
    .expect("syslog-ng.conf");
    let libraries = [
        "usr/lib/syslog-ng",
        "usr/lib/x86_64-linux-gnu",
        "lib/x86_64-linux-gnu",
    ]
    .map(|sub| root.join(sub).display().to_string())
    .join(":");
    let log = dir.join("syslog-ng.out");
    let child = Command::new(root.join("usr/sbin/syslog-ng"))
        .arg("-F")
        .arg("-f")
        .arg(&conf)
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ))
        .arg("-R")
        .arg(dir.join("persist"))
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"))
        .env("LD_LIBRARY_PATH", libraries)
        .stdout(Stdio::null())
        .stderr(log_file(&log))
        .spawn()
        .expect("syslog-ng starts");
    let daemon = Daemon {
        dir: dir.to_path_buf(),
        socket: socket.clone(),
        child,
        log,
    };
    wait_until(Duration::from_secs(20), "syslog-ng's socket", || {
        socket.exists()
    });
    daemon
}
