//! What the allocator holds, for `/v1/metrics`.
//!
//! jemalloc is the whole process's malloc: RocksDB's build links it in unprefixed (the
//! `jemalloc` feature of the `rocksdb` crate), so RocksDB's C++ and Rust's `System`
//! allocator both go through it. glibc's malloc kept most of what a busy node freed (its RSS
//! grew ~3 MiB a minute at ten times the soak's pace while the heap stayed flat, see
//! docs/reliability.md, Soak); jemalloc returns freed pages to the system.

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

/// The allocator's statistics now, or `None` if jemalloc cannot report them.
pub(crate) fn read() -> Option<Heap> {
    // jemalloc's statistics are a snapshot refreshed when the epoch advances.
    epoch::advance().ok()?;
    Some(Heap {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_allocations_go_through_jemalloc() {
        let before = read().expect("jemalloc reports its statistics");
        let buffer = vec![1_u8; 64 << 20];
        let after = read().unwrap();
        assert!(
            after.allocated >= before.allocated + (32 << 20),
            "a 64 MiB buffer moved jemalloc's allocated bytes from {} to {}: Rust allocates \
             elsewhere",
            before.allocated,
            after.allocated
        );
        assert!(after.resident >= after.allocated);
        drop(buffer);
    }
}
