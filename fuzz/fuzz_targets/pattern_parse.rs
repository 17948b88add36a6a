#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mcp_guard_core::fuzzing::pattern_parse(data));
