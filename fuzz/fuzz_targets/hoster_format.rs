//! libFuzzer entry point of the `hoster_format` target; the checks live in `poa_fuzz::hoster_format`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::hoster_format::run(data));
