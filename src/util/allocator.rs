//! How the C allocator treats the tensors' buffers.
//!
//! Burn's CPU backend gives most operations a fresh output buffer of a few megabytes, freed an
//! operation or two later. glibc's defaults hand such buffers back to the kernel (blocks above
//! its mmap threshold are unmapped; free space at the top of the heap above its trim threshold is
//! released), so the next operation's buffer is faulted in again a page at a time, zeroed by the
//! kernel, on the thread that drives the model while the others wait: about a sixth of the
//! in-context classifier's wall time (`perf`: `exc_page_fault`, `clear_page_erms`, `brk`).
//! Raising both thresholds keeps those buffers in the process for reuse. Peak memory is
//! unchanged (the same buffers are live at the peak); what is kept between operations is at most
//! the trim threshold.

/// Blocks below this come from the heap, so freeing them keeps them for the next operation.
/// Above it (the model's largest matrices at load) they are mapped and unmapped as before.
const MMAP_THRESHOLD: i32 = 64 << 20;
/// Free memory at the top of the heap is returned to the kernel only beyond this.
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Called first thing in `main`, before any allocation worth keeping.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes two of the allocator's parameters; called before any
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
