//! libFuzzer entry point of the `resp_request` target; the checks live in `poa_fuzz::resp_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::resp_request::run(data));
