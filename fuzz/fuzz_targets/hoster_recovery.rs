//! libFuzzer entry point of the `hoster_recovery` target; the checks live in `poa_fuzz::hoster_recovery`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::hoster_recovery::run(data));
