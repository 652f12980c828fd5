//! Fuzz target `cbor`: see `plexus_fuzz::cbor_canonical` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plexus_fuzz::cbor_canonical(data));
