//! libFuzzer entry point of the `config` target; the checks live in `poa_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::config::run(data));
