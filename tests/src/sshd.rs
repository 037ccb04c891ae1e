//! A real OpenSSH server on loopback that logs through a real rsyslogd, and a real
//! `ssh` client that fails to log in to it: the lines the agent reads on a fleet, written
//! by the programs that write them there (Debian's `openssh-server` and `rsyslog`).
//!
//! sshd logs with `syslog(3)`, which writes to `/dev/log`; this machine's tests must not
//! touch the host's `/dev/log`. So sshd runs in its own mount namespace
//! (`unshare -m`), where `/dev` is a fresh tmpfs holding the devices sshd opens and a
//! `/dev/log` that points at this rsyslogd's socket, and `/run` a fresh tmpfs for its
//! privilege-separation directory. rsyslogd writes `auth,authpriv` to `auth.log` in the
//! traditional file format, as Debian 12's default configuration does. Needs root
//! (mount namespaces, sshd's privilege separation). Both are killed on drop.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

pub const SSHD: &str = "/usr/sbin/sshd";
pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub struct Sshd {
    dir: PathBuf,
    pub port: u16,
    /// What rsyslogd wrote: the host's auth log.
    pub auth_log: PathBuf,
    rsyslogd: Child,
    sshd: Child,
}

impl Sshd {
    /// Starts rsyslogd and sshd under `dir`; waits until sshd listens and its first
    /// line (`Server listening on …`) is in the auth log.
    pub fn start(dir: &Path) -> Sshd {
        for program in [SSHD, RSYSLOGD, "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: apt-get install openssh-server openssh-client rsyslog (.ci/run does)"
            );
        }
        // SAFETY: geteuid cannot fail.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the real sshd test needs root (a mount namespace, sshd's privilege separation)"
        );
        std::fs::create_dir_all(dir).expect("sshd dir");
        let socket = dir.join("log.sock");
        let auth_log = dir.join("auth.log");
        let rsyslog_conf = dir.join("rsyslog.conf");
        std::fs::write(
            &rsyslog_conf,
            format!(
                "global(workDirectory=\"{dir}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{socket}\" CreatePath=\"on\")\n\
                 auth,authpriv.* action(type=\"omfile\" file=\"{log}\" template=\"RSYSLOG_TraditionalFileFormat\")\n",
                dir = dir.display(),
                socket = socket.display(),
                log = auth_log.display(),
            ),
        )
        .expect("rsyslog.conf");
        let rsyslogd = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&rsyslog_conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("rsyslogd.out")))
            .spawn()
            .expect("rsyslogd starts");
        wait_until(Duration::from_secs(20), "rsyslogd's socket", || {
            socket.exists()
        });

        let host_key = dir.join("host_ed25519");
        let status = Command::new("/usr/bin/ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen failed");
        let port = free_port();
        let sshd_config = dir.join("sshd_config");
        // Debian's defaults where they matter: PAM for passwords (so pam_unix writes its
        // lines too), keyboard-interactive off.
        std::fs::write(
            &sshd_config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {dir}/sshd.pid\n\
                 UsePAM yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication no\nPermitRootLogin no\nSyslogFacility AUTH\nLogLevel INFO\n",
                key = host_key.display(),
                dir = dir.display(),
            ),
        )
        .expect("sshd_config");
        let old_dev = dir.join("host-dev");
        std::fs::create_dir_all(&old_dev).expect("host-dev");
        let script = dir.join("namespace.sh");
        std::fs::write(
            &script,
            format!(
                "set -e\n\
                 mount --make-rprivate /\n\
                 mount --rbind /dev {old}\n\
                 mount -t tmpfs -o mode=755 tmpfs /dev\n\
                 for n in null zero full random urandom tty ptmx; do touch /dev/$n; mount --bind {old}/$n /dev/$n; done\n\
                 mkdir /dev/pts /dev/shm\n\
                 mount --rbind {old}/pts /dev/pts\n\
                 ln -s {socket} /dev/log\n\
                 mount -t tmpfs -o mode=755 tmpfs /run\n\
                 mkdir -m 755 /run/sshd\n\
                 exec {SSHD} -D -f {config}\n",
                old = old_dev.display(),
                socket = socket.display(),
                config = sshd_config.display(),
            ),
        )
        .expect("namespace.sh");
        let sshd = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh"])
            .arg(&script)
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("sshd.out")))
            .spawn()
            .expect("unshare starts");
        let mut server = Sshd {
            dir: dir.to_path_buf(),
            port,
            auth_log,
            rsyslogd,
            sshd,
        };
        let needle = format!("Server listening on 127.0.0.1 port {port}");
        let started = Instant::now();
        while !server.auth_log_text().contains(&needle) {
            if let Ok(Some(status)) = server.sshd.try_wait() {
                panic!(
                    "sshd exited ({status}): {}",
                    std::fs::read_to_string(dir.join("sshd.out")).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not log {needle:?}; sshd: {}; rsyslogd: {}; auth.log: {}",
                std::fs::read_to_string(dir.join("sshd.out")).unwrap_or_default(),
                std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default(),
                server.auth_log_text(),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn auth_log_text(&self) -> String {
        std::fs::read_to_string(&self.auth_log).unwrap_or_default()
    }

    /// One connection of the real `ssh` client as `user`, offering `passwords` wrong
    /// passwords (through `SSH_ASKPASS`) before it gives up. Returns when the client
    /// has exited (it always fails).
    pub fn fail_logins(&self, user: &str, passwords: u32) {
        let askpass = self.dir.join("askpass.sh");
        if !askpass.exists() {
            std::fs::write(&askpass, "#!/bin/sh\necho 'not-the-password'\n").expect("askpass");
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755))
                .expect("askpass mode");
        }
        let output = Command::new("/usr/bin/ssh")
            .args(["-p", &self.port.to_string()])
            .args([
                "-F",
                "/dev/null",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("NumberOfPasswordPrompts={passwords}"))
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("Permission denied"),
            "ssh as {user} should have been refused: {} {stderr}",
            output.status
        );
    }

    /// Waits until `ready` holds for the auth log's text.
    pub fn wait_for_log(&self, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.auth_log_text();
            if ready(&text) {
                return text;
            }
            assert!(
                started.elapsed() < timeout,
                "the auth log did not get the lines awaited; it holds:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        for child in [&mut self.sshd, &mut self.rsyslogd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn log_file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).expect("log file"))
}

pub(crate) fn wait_until(timeout: Duration, what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
