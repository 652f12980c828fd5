//! Fuzz target `policy_body`: see `plexus_fuzz::policy_body` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::policy_body(data));
