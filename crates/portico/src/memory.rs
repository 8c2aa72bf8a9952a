//! How the process gives memory back. glibc serves a large allocation with its own mapping
//! and unmaps it when freed, but after the first such free it raises that threshold to the
//! freed size ("dynamic mmap threshold"), so from then on blocks that size come from the heap
//! and stay resident after use. Every password check allocates Argon2's 19 MiB: one sign-in
//! would leave Portico 19 MiB larger for good. A fixed threshold keeps big, short-lived
//! buffers (password hashing, upload parts) out of the heap, where they cannot linger.

/// Blocks at least this large get their own mapping, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Call once, before any thread starts.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
