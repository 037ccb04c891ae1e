//! Opening a followed file without being tricked: no symbolic link followed unless it
//! leads to a file the configured paths match, owned by root or the link's owner; only
//! regular files; blocking reads; and the fingerprint that tells a file from the one
//! that replaced it at the same path.

use super::*;

/// Why a watched path was not opened.
#[derive(Debug)]
pub(super) enum OpenError {
    /// It cannot be opened now (missing, not permitted): tried again, quietly.
    Io(io::Error),
    /// It is not a file the agent reads (see [`open_watched`]): why.
    Refused(String),
}

/// Opens the file at a watched `path`, as the module doc says: the final component is
/// not followed when it is a symbolic link, unless the link's target is a file
/// `discovery` wants, owned by root or by the link's owner; only a regular file is
/// accepted; nothing blocks (`O_NONBLOCK`, cleared once the file is known to be
/// regular). Returns the file and its `fstat`.
pub(super) fn open_watched(
    path: &Path,
    discovery: &discover::Discovery,
) -> Result<(File, Metadata), OpenError> {
    match open_no_follow(path) {
        Ok(file) => {
            let meta = regular(&file)?;
            Ok((file, meta))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => open_link(path, discovery),
        Err(e) => Err(OpenError::Io(e)),
    }
}

pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// The `fstat` of `file` when it is a regular file (then made blocking again).
pub(super) fn regular(file: &File) -> Result<Metadata, OpenError> {
    let meta = file.metadata().map_err(OpenError::Io)?;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        clear_nonblocking(file).map_err(OpenError::Io)?;
        return Ok(meta);
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(OpenError::Refused(format!("{what}, not a regular file")))
}

/// `path` is a symbolic link: its target, when the module doc's rule allows it.
pub(super) fn open_link(
    path: &Path,
    discovery: &discover::Discovery,
) -> Result<(File, Metadata), OpenError> {
    let link = std::fs::symlink_metadata(path).map_err(OpenError::Io)?;
    let target = std::fs::canonicalize(path).map_err(OpenError::Io)?;
    if !discovery.wants(&target) {
        return Err(OpenError::Refused(format!(
            "a symbolic link to {}, which the configured paths do not match",
            target.display()
        )));
    }
    // The canonical path has no link at its end; were one put there meanwhile, this
    // fails (ELOOP) and the path is tried again.
    let file = open_no_follow(&target).map_err(OpenError::Io)?;
    let meta = regular(&file)?;
    if meta.uid() != 0 && meta.uid() != link.uid() {
        return Err(OpenError::Refused(format!(
            "a symbolic link owned by uid {} to {}, owned by uid {}: neither root nor the link's owner",
            link.uid(),
            target.display(),
            meta.uid()
        )));
    }
    Ok((file, meta))
}

/// Clears `O_NONBLOCK`. (It does nothing to regular files on Linux; cleared anyway, so
/// no reader of the descriptor can ever see `EAGAIN`.)
pub(super) fn clear_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL take an open descriptor (`file` owns it) and an int;
    // no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Hash of the file's first line (or first 1 KiB), once it is complete; FNV-1a. A
/// compressed file (`whole`) never changes: its first bytes, whatever they are.
pub(super) fn fingerprint(file: &File, whole: bool) -> Option<u64> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    let head = &head[..filled];
    let end = match head.iter().position(|b| *b == b'\n') {
        _ if whole && filled > 0 => filled,
        Some(newline) => newline + 1,
        None if filled == FINGERPRINT_BYTES => filled,
        None => return None,
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in &head[..end] {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(hash)
}

/// The offset just after the last newline before `len` (0 when none is found within
/// `window` bytes), so reading "from the end" never starts mid-line.
pub(super) fn last_line_end(file: &File, len: u64, window: usize) -> u64 {
    let start = len.saturating_sub(window as u64);
    let mut tail = vec![0u8; (len - start) as usize];
    if file.read_exact_at(&mut tail, start).is_err() {
        return len;
    }
    match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        None => len,
    }
}
