//! What the allocator holds, for `/v1/metrics`.
//!
//! On Linux with glibc jemalloc is the whole process's malloc: RocksDB's build links it in
//! unprefixed there (the `jemalloc` feature of the `rocksdb` crate), so RocksDB's C++ and
//! Rust's `System` allocator both go through it. glibc's malloc kept most of what a busy node
//! freed (its RSS grew ~3 MiB a minute at ten times the soak's pace while the heap stayed
//! flat, see docs/reliability.md, Soak); jemalloc gives pages back to the system once they
//! have stayed free for a while (its decay, about 10 s, applied as the process allocates).
//! Elsewhere (macOS: jemalloc's symbols are prefixed) nothing allocates through it, and
//! [`read`] reports nothing rather than its near-empty statistics.

use tikv_jemalloc_ctl::{epoch, stats};

/// A snapshot of jemalloc's statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heap {
    /// Bytes allocated and not yet freed.
    pub(crate) allocated: u64,
    /// Bytes in pages the allocator holds resident: the allocated bytes, its metadata and
    /// freed pages not yet returned to the system.
    pub(crate) resident: u64,
}

/// The allocator's statistics now, or `None` if jemalloc cannot report them or is not the
/// process's malloc.
pub(crate) fn read() -> Option<Heap> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return None;
    }
    // jemalloc's statistics are a snapshot refreshed when the epoch advances.
    epoch::advance().ok()?;
    Some(Heap {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn rust_allocations_go_through_jemalloc() {
        let before = read().expect("jemalloc reports its statistics");
        let buffer = std::hint::black_box(vec![1_u8; 64 << 20]);
        let after = read().unwrap();
        assert!(
            after.allocated >= before.allocated + (32 << 20),
            "a 64 MiB buffer moved jemalloc's allocated bytes from {} to {}: Rust allocates \
             elsewhere",
            before.allocated,
            after.allocated
        );
        drop(std::hint::black_box(buffer));
    }
}
