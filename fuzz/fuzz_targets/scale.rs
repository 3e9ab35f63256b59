//! libFuzzer entry point of the `scale` target; the checks live in `poa_fuzz::scale`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::scale::run(data));
