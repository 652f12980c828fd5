//! Fuzz target `entry`: see `plexus_fuzz::entry` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::entry(data));
