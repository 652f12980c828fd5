//! Fuzz target `sync_response`: see `plexus_fuzz::sync_response` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::sync_response(data));
