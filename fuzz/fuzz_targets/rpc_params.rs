//! libFuzzer entry point of the `rpc_params` target; the checks live in `poa_fuzz::rpc_params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poa_fuzz::rpc_params::run(data));
