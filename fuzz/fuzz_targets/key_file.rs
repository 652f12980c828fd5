//! Fuzz target `key_file`: see `plexus_fuzz::key_file` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::key_file(data));
