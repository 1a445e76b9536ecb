//! This process's resident memory, for the memory lines of training logs.

/// Resident and peak resident memory of this process in bytes (`VmRSS`, `VmHWM` from
/// `/proc/self/status`; `None` where that file does not exist).
pub fn process_memory() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<usize> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Bytes in MiB.
pub fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_and_process_memory() {
        assert_eq!(mib(3 * 1024 * 1024 / 2), 1.5);
        // on Linux the peak is at least the current resident size
        if let Some((rss, peak)) = process_memory() {
            assert!(rss > 0 && peak >= rss);
        }
    }
}
