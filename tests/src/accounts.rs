//! Real account tools and privilege switches writing real lines: a shell script runs
//! Debian's `useradd`, `usermod`, `gpasswd`, `userdel`, `sudo`, `su` and `runuser` in a
//! mount namespace of its own, where `/etc` is a private copy (the host's users and
//! groups are never touched), `/dev/log` points at a private rsyslogd's socket, and
//! `/dev/pts` is a fresh instance (su reads passwords from a terminal: `script` gives it
//! one). rsyslogd writes everything to one file in the traditional format, as Debian's
//! `auth.log`. Needs root (the namespace, the tools).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::syslog_daemons::rsyslogd;

/// Runs `script` (sh) in the namespace; returns what rsyslogd wrote once `done` holds
/// for it.
pub fn run_logged(dir: &Path, script: &str, done: impl Fn(&str) -> bool) -> String {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the account tools test needs root (a mount namespace, useradd, su)"
    );
    for program in [
        "/usr/bin/sudo",
        "/usr/bin/su",
        "/usr/sbin/useradd",
        "/usr/bin/script",
    ] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: apt-get install sudo passwd util-linux bsdutils (.ci/run does)"
        );
    }
    fs::create_dir_all(dir).expect("accounts dir");
    let log = dir.join("auth.log");
    let daemon = rsyslogd(
        &dir.join("rsyslog"),
        &format!(
            "*.* action(type=\"omfile\" file=\"{}\" template=\"RSYSLOG_TraditionalFileFormat\")",
            log.display()
        ),
    );
    let etc = dir.join("etc");
    let copied = Command::new("cp")
        .args(["-a", "/etc"])
        .arg(&etc)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cannot copy /etc");
    let old_dev = dir.join("host-dev");
    fs::create_dir_all(&old_dev).expect("host-dev");
    let wrapper = dir.join("namespace.sh");
    fs::write(
        &wrapper,
        format!(
            "set -e\n\
             mount --make-rprivate /\n\
             mount --bind {etc} /etc\n\
             mount --rbind /dev {old}\n\
             mount -t tmpfs -o mode=755 tmpfs /dev\n\
             for n in null zero full random urandom tty; do touch /dev/$n; mount --bind {old}/$n /dev/$n; done\n\
             mkdir /dev/pts /dev/shm\n\
             mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts\n\
             ln -s pts/ptmx /dev/ptmx\n\
             ln -s {socket} /dev/log\n\
             mount -t tmpfs -o mode=755 tmpfs /run\n\
             mount -t tmpfs -o mode=755 tmpfs /home\n\
             set +e\n\
             {script}\n",
            etc = etc.display(),
            old = old_dev.display(),
            socket = daemon.socket.display(),
        ),
    )
    .expect("namespace.sh");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh"])
        .arg(&wrapper)
        .output()
        .expect("unshare runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the script failed:\n{said}");
    let started = std::time::Instant::now();
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rsyslogd did not write what was expected:\n{text}\nscript said:\n{said}\nrsyslogd: {}",
            daemon.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
