//! Fuzzes the control socket's decoder (`futuretop attach`) from both ends: any bytes a
//! client sends (as a detached run reads them) or a run answers (as a client reads them)
//! must decode to messages or end in an error — never a panic, and never an allocation
//! past the frame limit.
#![no_main]

use futuretop::attach::{read_frame, ToClient, ToRun};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut from_client = data;
    while let Ok(Some(_)) = read_frame::<ToRun>(&mut from_client) {}
    let mut from_run = data;
    while let Ok(Some(_)) = read_frame::<ToClient>(&mut from_run) {}
});
