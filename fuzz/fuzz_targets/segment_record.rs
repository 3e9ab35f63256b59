//! libFuzzer entry point of the `segment_record` target; the checks live in `poa_fuzz::segment_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::segment_record::run(data));
