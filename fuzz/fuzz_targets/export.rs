//! Fuzz target `export`: see `plexus_fuzz::export_stream` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::export_stream(data));
