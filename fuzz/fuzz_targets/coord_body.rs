//! Fuzz target `coord_body`: see `plexus_fuzz::coord_body` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::coord_body(data));
