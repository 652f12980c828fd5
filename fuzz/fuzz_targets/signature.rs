//! Fuzz target `signature`: see `plexus_fuzz::signature` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::signature(data));
