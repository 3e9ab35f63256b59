//! libFuzzer entry point of the `state_index` target; the checks live in `poa_fuzz::state_index`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::state_index::run(data));
