//! libFuzzer entry point of the `resp_reply` target; the checks live in `poa_fuzz::resp_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::resp_reply::run(data));
