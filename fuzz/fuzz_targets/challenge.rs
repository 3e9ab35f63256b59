//! libFuzzer entry point of the `challenge` target; the checks live in `poa_fuzz::challenge`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::challenge::run(data));
