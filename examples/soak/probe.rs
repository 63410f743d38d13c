//! What the process costs right now, from Linux's /proc: resident memory
//! and open descriptors. `None` where /proc is not there.

/// Resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// VmRSS.
    pub rss_kib: u64,
    /// VmHWM: the peak of VmRSS so far.
    pub peak_kib: u64,
}

/// This process's resident memory.
pub fn memory() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// Descriptors this process holds open (the directory listing's own
/// descriptor included, so compare counts with counts).
pub fn open_descriptors() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}
