//! Fuzz target `fork_proof`: see `plexus_fuzz::fork_proof` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::fork_proof(data));
