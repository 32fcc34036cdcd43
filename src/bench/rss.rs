//! The process's peak resident memory, and setting it back to what is resident now so that one
//! process can measure the peak of several configurations in turn (Linux; elsewhere `None`).

/// The peak resident memory (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Sets the peak back to the memory resident now (`5` written to `/proc/self/clear_refs`),
/// after handing the allocator's free memory back to the system — otherwise what an earlier
/// configuration freed but the allocator kept would count in the next one's peak. False where
/// the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heap to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_large_allocation_and_goes_back_after_a_reset() {
        assert!(reset_peak_rss(), "this Linux refuses /proc/self/clear_refs");
        let before = peak_rss_mib().expect("VmHWM in /proc/self/status");
        let mut big = vec![0u8; 384 << 20];
        for i in (0..big.len()).step_by(4096) {
            big[i] = 1;
        }
        std::hint::black_box(&big);
        let during = peak_rss_mib().unwrap();
        assert!(during >= before + 300.0, "{before} → {during} MiB");
        drop(big);
        assert!(reset_peak_rss());
        let after = peak_rss_mib().unwrap();
        assert!(
            after < during - 300.0,
            "the reset left {after} MiB of {during}"
        );
    }
}
