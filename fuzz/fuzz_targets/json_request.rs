//! Fuzz target `json_request`: see `plexus_fuzz::json_request` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::json_request(data));
