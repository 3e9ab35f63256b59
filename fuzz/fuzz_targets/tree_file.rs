//! libFuzzer entry point of the `tree_file` target; the checks live in `poa_fuzz::tree_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::tree_file::run(data));
