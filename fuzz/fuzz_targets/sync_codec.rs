//! Fuzz target `sync_codec`: see `plexus_fuzz::sync_codec` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::sync_codec(data));
