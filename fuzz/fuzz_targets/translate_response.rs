#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| busbar_codec::fuzzing::translate_response(data));
