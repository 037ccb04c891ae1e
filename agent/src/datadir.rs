//! Whether `data_dir` can be trusted with the agent's state: the disk buffer, the read
//! positions and the dead letters. Whoever can write there can forge events (a record
//! appended to a segment is shipped as the agent's own) or make the agent skip lines
//! (a checkpoint moved ahead), so the directory, and the `buffer` directory the agent
//! makes in it, must be
//!
//! - owned by the agent's user (the process's effective user) or by root, and
//! - writable by neither group nor others (no `g+w`, no `o+w`; the sticky bit does not
//!   help: others could still add files).
//!
//! [`check`] runs with the configuration's checks (`picket-agent validate`, start,
//! reload), so a bad directory stops the agent with exit code 78 and a message naming
//! `agent.data_dir`. A directory that does not exist yet is fine: the agent makes it
//! 0700 (umask 0077). One exception for a directory that is the agent's own but too
//! open: when it is empty, nobody can have put anything in it yet, so [`prepare`] (at
//! start, before anything is read or written there) makes it 0700 (logged at WARN),
//! then checks it again. A fresh tmpfs mount (mode 1777) is that case.
//!
//! `validate` run as root cannot know which user the service will run as, so it
//! checks the mode only ([`Owners::Anyone`]); the unit's `ExecStartPre=` runs it as the
//! agent's user, which checks both. Not checked: ACLs, and the directories above
//! `data_dir` (keep them writable by root only; the packaged `/var/lib` is).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::warn;

/// Why `data_dir` is not trusted.
#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("{path} is owned by uid {owner}, not by the agent's user (uid {user}) or root")]
    Owner {
        path: PathBuf,
        owner: u32,
        user: u32,
    },
    #[error(
        "{path} is writable by {who} (mode {mode:04o}): another user could forge buffered events or read positions; make it 0700 and owned by the agent's user"
    )]
    Mode {
        path: PathBuf,
        who: &'static str,
        mode: u32,
    },
    #[error("{path} is not a directory")]
    NotDirectory { path: PathBuf },
    #[error("cannot check {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Who may own the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// The process's effective user or root: what the agent itself requires.
    Agent,
    /// Anyone (the mode is still checked): `validate` run as root.
    Anyone,
}

/// The process's effective user id.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The directories holding state: `data_dir` and the buffer's.
fn state_dirs(data_dir: &Path) -> [PathBuf; 2] {
    [data_dir.to_path_buf(), data_dir.join("buffer")]
}

/// Checks `data_dir` and its `buffer` directory as the module doc says, changing
/// nothing: an empty directory of the agent's that is too open passes (see [`prepare`]).
pub fn check(data_dir: &Path, owners: Owners) -> Result<(), DataDirError> {
    for dir in state_dirs(data_dir) {
        check_one(&dir, owners, true)?;
    }
    Ok(())
}

/// At start, before the state is opened: makes an empty directory of the agent's that
/// is too open 0700 (logged), then checks strictly.
pub fn prepare(data_dir: &Path) -> Result<(), DataDirError> {
    let user = effective_uid();
    for dir in state_dirs(data_dir) {
        let Some(meta) = metadata(&dir)? else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        if meta.is_dir() && meta.uid() == user && mode & 0o022 != 0 {
            // Closed first, then looked into: nobody can add a file in between.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
                DataDirError::Io {
                    path: dir.clone(),
                    source,
                }
            })?;
            if is_empty(&dir)? {
                warn!(path = %dir.display(), mode = format!("{mode:04o}"), "State directory was writable by others but empty; made it 0700.");
            } else {
                // Not ours to repair: what is in it may be forged.
                return Err(mode_error(&dir, mode));
            }
        }
        check_one(&dir, Owners::Agent, false)?;
    }
    Ok(())
}

fn metadata(dir: &Path) -> Result<Option<fs::Metadata>, DataDirError> {
    match fs::metadata(dir) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DataDirError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn is_empty(dir: &Path) -> Result<bool, DataDirError> {
    let mut entries = fs::read_dir(dir).map_err(|source| DataDirError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries.next().is_none())
}

fn mode_error(dir: &Path, mode: u32) -> DataDirError {
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    };
    DataDirError::Mode {
        path: dir.to_path_buf(),
        who,
        mode,
    }
}

/// One directory; `empty_ok`: an empty one of the agent's may be too open.
fn check_one(dir: &Path, owners: Owners, empty_ok: bool) -> Result<(), DataDirError> {
    let Some(meta) = metadata(dir)? else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(DataDirError::NotDirectory {
            path: dir.to_path_buf(),
        });
    }
    let user = effective_uid();
    if owners == Owners::Agent && meta.uid() != user && meta.uid() != 0 {
        return Err(DataDirError::Owner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && !(empty_ok && meta.uid() == user && is_empty(dir)?) {
        return Err(mode_error(dir, mode));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_to_is_refused_unless_empty_and_then_closed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        assert!(check(&dir, Owners::Agent).is_ok(), "missing: made 0700");
        fs::create_dir(&dir).unwrap();
        mode(&dir, 0o755);
        check(&dir, Owners::Agent).unwrap();
        prepare(&dir).unwrap();

        // The regression: a 0777 data_dir let another user forge buffered events.
        fs::create_dir(dir.join("buffer")).unwrap();
        fs::write(dir.join("buffer/00000000000000000000.seg"), b"forged").unwrap();
        mode(&dir, 0o777);
        for err in [
            check(&dir, Owners::Agent).unwrap_err(),
            check(&dir, Owners::Anyone).unwrap_err(),
            prepare(&dir).unwrap_err(),
        ] {
            assert!(matches!(err, DataDirError::Mode { .. }), "{err}");
            assert!(err.to_string().contains("group and others"), "{err}");
        }
        mode(&dir, 0o1733);
        assert!(check(&dir, Owners::Agent).is_err(), "sticky does not help");
        mode(&dir, 0o770);
        assert!(check(&dir, Owners::Agent).is_err(), "group-writable");
        mode(&dir, 0o700);
        check(&dir, Owners::Agent).unwrap();
        // The buffer's directory too.
        mode(&dir.join("buffer"), 0o757);
        let err = check(&dir, Owners::Agent).unwrap_err();
        assert!(err.to_string().contains("buffer"), "{err}");
        mode(&dir.join("buffer"), 0o700);

        // Empty and the agent's own (a fresh tmpfs is 1777): closed at start.
        let fresh = root.path().join("fresh");
        fs::create_dir(&fresh).unwrap();
        mode(&fresh, 0o1777);
        check(&fresh, Owners::Agent).unwrap();
        prepare(&fresh).unwrap();
        let now = fs::metadata(&fresh).unwrap().mode() & 0o7777;
        assert_eq!(now, 0o700);
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        if effective_uid() != 0 {
            return; // Giving a directory away needs root.
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        fs::create_dir(&dir).unwrap();
        mode(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let err = check(&dir, Owners::Agent).unwrap_err();
        assert!(
            matches!(err, DataDirError::Owner { owner: 65534, .. }),
            "{err}"
        );
        assert!(prepare(&dir).is_err());
        // `validate` as root checks the mode only.
        check(&dir, Owners::Anyone).unwrap();
        mode(&dir, 0o777);
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
        fs::write(dir.join("checkpoints.json"), b"{}").unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        assert!(check(&dir, Owners::Anyone).is_err());
        // Root's own directory is trusted by any agent user.
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
        mode(&dir, 0o755);
        check(&dir, Owners::Agent).unwrap();
    }
}
