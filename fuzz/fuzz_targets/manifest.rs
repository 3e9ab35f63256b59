//! libFuzzer entry point of the `manifest` target; the checks live in `poa_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::manifest::run(data));
