//! Keeping the agent's resident memory to what it uses.
//!
//! Most of an idle agent's resident set is its own binary: start-up (the command line,
//! the config, TLS and HTTP client set-up, the runtime, file discovery) runs code
//! scattered over the binary, and the kernel maps 64 KiB around every page it faults
//! in, so several MiB of code and read-only data stay mapped that an idle agent never
//! runs again. [`release_startup_pages`] unmaps them once start-up is over: the kernel
//! drops the page-table entries (`MADV_DONTNEED`) of the binary's read-only file
//! mappings, the pages themselves stay in the page cache, and whatever the agent runs
//! next is mapped again on its first use (a minor fault, no disk read). What is
//! released is code and constants the file holds, never data: a mapping with private
//! (copy-on-write) pages, such as the relocated read-only data, is left alone.
//!
//! Linux only; elsewhere, or when `/proc` cannot be read, it does nothing.

/// How long after start-up the pages are released: start-up (discovery, the first
/// reads) is over by then.
pub const AFTER_START: std::time::Duration = std::time::Duration::from_secs(2);

/// Unmaps the pages of this binary's read-only file mappings that hold no private data;
/// the bytes of mappings released.
#[cfg(target_os = "linux")]
pub fn release_startup_pages() -> u64 {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return 0;
    };
    let Some(exe) = exe.to_str() else {
        return 0;
    };
    let mut released = 0;
    for mapping in read_only_file_mappings(&smaps, exe) {
        let (start, len) = mapping;
        // SAFETY: the range is one whole mapping of this process's own executable,
        // read-only and without private pages: the kernel drops page-table entries
        // whose contents are the file's, and maps them again from the page cache on
        // the next access. No memory this process wrote is in it.
        let done = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if done == 0 {
            released += len as u64;
        }
    }
    released
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_pages() -> u64 {
    0
}

/// From `/proc/self/smaps`: (start, length) of each mapping of the file `exe` that is
/// read-only or read-and-execute, private, and holds no anonymous (copy-on-write)
/// pages.
fn read_only_file_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut clean = true;
    let mut finish = |current: Option<(usize, usize)>, clean: bool| {
        if let Some(range) = current.filter(|_| clean) {
            found.push(range);
        }
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // A mapping's header: `start-end perms offset dev inode path`.
            finish(current.take(), clean);
            clean = true;
            let perms = words.next().unwrap_or("");
            let path = words.nth(3).unwrap_or("");
            if path == exe && (perms == "r-xp" || perms == "r--p") && end > start {
                current = Some((start, end - start));
            }
            continue;
        }
        // A field of the mapping: a private (copy-on-write) page, in memory or
        // swapped out, keeps it. (Dirty counts the file's own pages not yet written
        // back, as for a binary just built: they are the file's, and stay cached.)
        let kib = |name: &str| {
            (first == name)
                .then(|| words.clone().next().and_then(|n| n.parse::<u64>().ok()))
                .flatten()
        };
        for name in ["Anonymous:", "Swap:"] {
            if kib(name).is_some_and(|n| n > 0) {
                clean = false;
            }
        }
    }
    finish(current, clean);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0200000 r--p 00000000 fe:01 123 /usr/bin/picket-agent
Rss:                2048 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0200000-55d0a0a00000 r-xp 00200000 fe:01 123 /usr/bin/picket-agent
Rss:                5800 kB
Private_Dirty:       512 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0a0a00000-55d0a0b80000 r--p 00a00000 fe:01 123 /usr/bin/picket-agent
Rss:                1536 kB
Private_Dirty:      1536 kB
Anonymous:          1536 kB
Swap:                  0 kB
55d0a0b80000-55d0a0b90000 rw-p 00b80000 fe:01 123 /usr/bin/picket-agent
Anonymous:            64 kB
7f0000000000-7f0000200000 r-xp 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000300000-7f0000400000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
";

    #[test]
    fn only_the_binarys_clean_read_only_mappings_are_released() {
        assert_eq!(
            read_only_file_mappings(SMAPS, "/usr/bin/picket-agent"),
            vec![(0x55d0a0000000, 0x200000), (0x55d0a0200000, 0x800000)]
        );
        assert!(read_only_file_mappings(SMAPS, "/usr/bin/other").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_leaves_the_process_working() {
        // This test binary's own code: released, then run again.
        let released = release_startup_pages();
        assert!(released > 0);
        let mut text = String::new();
        for n in 0..1000 {
            text.push_str(&n.to_string());
        }
        assert_eq!(text.len(), 2890);
    }
}
