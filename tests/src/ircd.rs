//! A private IRC server for tests: Debian's `ngircd` on loopback ports picked here,
//! plain and TLS (the test PKI's server certificate), in the foreground, killed on drop.
//! And [`Reader`], a second client that joins a channel and collects what is said.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::pki::Pki;

pub const NGIRCD: &str = "/usr/sbin/ngircd";

pub struct Ircd {
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    log: PathBuf,
}

impl Ircd {
    /// Starts ngircd with its config and log under `dir`; waits until it listens.
    pub fn start(dir: &Path, pki: &Pki) -> Ircd {
        assert!(
            Path::new(NGIRCD).exists(),
            "{NGIRCD} is missing: apt-get install ngircd (.ci/run does)"
        );
        std::fs::create_dir_all(dir).expect("ircd dir");
        // ngircd drops root for "nobody": what it reads must be readable to all.
        let open = |path: &Path, mode: u32| {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
        };
        let mut at = dir.to_path_buf();
        while let Some(parent) = at.parent() {
            if parent == Path::new("/tmp") || parent == Path::new("/") {
                break;
            }
            open(&at, 0o755);
            at = parent.to_path_buf();
        }
        open(&at, 0o755);
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        std::fs::copy(&pki.server_cert, &cert).expect("copy cert");
        std::fs::copy(&pki.server_key, &key).expect("copy key");
        open(&cert, 0o644);
        open(&key, 0o644);
        let port = free_port();
        let tls_port = free_port();
        let config = dir.join("ngircd.conf");
        std::fs::write(
            &config,
            format!(
                "[Global]\n\tName = irc.picket.test\n\tInfo = Picket test server\n\tListen = 127.0.0.1\n\tPorts = {port}\n\tMotdPhrase = \"picket test\"\n\tAdminInfo1 = test\n\tAdminInfo2 = test\n\tAdminEMail = test@example.invalid\n[Limits]\n\tMaxConnectionsIP = 0\n\tPingTimeout = 120\n[Options]\n\tPAM = no\n\tIdent = no\n\tDNS = no\n[SSL]\n\tCertFile = {cert}\n\tKeyFile = {key}\n\tPorts = {tls_port}\n",
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .expect("ngircd config");
        open(&config, 0o644);
        let log = dir.join("ngircd.log");
        let child = Command::new(NGIRCD)
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start ngircd");
        let ircd = Ircd {
            child,
            port,
            tls_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", tls_port)).is_err()
            || TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "ngircd did not listen:\n{}",
                ircd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ircd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain-text client that has joined a channel.
pub struct Reader {
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Reader {
    /// Connects as `nick`, registers and joins `channel`.
    pub fn join(port: u16, nick: &str, channel: &str) -> Reader {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to ngircd");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut reader = Reader {
            lines: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        };
        reader.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :reader\r\n"));
        reader
            .wait_for(" 001 ", Duration::from_secs(10))
            .expect("registered");
        reader.send(&format!("JOIN {channel}\r\n"));
        reader
            .wait_for(" 366 ", Duration::from_secs(10))
            .expect("joined");
        reader
    }

    fn send(&mut self, text: &str) {
        self.stream
            .write_all(text.as_bytes())
            .expect("write to ngircd");
    }

    /// Reads lines (answering PINGs) until one contains `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        // Kept across timeouts: a read cut by one keeps what it got.
        let mut line = String::new();
        while Instant::now() < deadline {
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with('\n') => {
                    let done = std::mem::take(&mut line);
                    if let Some(token) = done.strip_prefix("PING ") {
                        self.send(&format!("PONG {}\r\n", token.trim_end()));
                    }
                    if done.contains(needle) {
                        return Some(done.trim_end().to_string());
                    }
                }
                Ok(_) | Err(_) => {}
            }
        }
        None
    }
}
