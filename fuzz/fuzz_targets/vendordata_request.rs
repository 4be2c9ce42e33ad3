//! The request body decoder (`VendordataRequest::parse` and what the handler
//! and the cache filter derive from a body); see `checks.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::vendordata_request(data));
