//! Fuzzes the process-pool protocol decoder from both ends: any bytes on a worker's pipe
//! (as the parent reads them) or on the parent's (as a worker reads them) must decode to
//! messages or end in an error — never a panic, and never an allocation past the frame
//! limit.
#![no_main]

use futuretop_engine::executor::protocol::{read_frame, ToParent, ToWorker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut from_worker = data;
    while let Ok(Some(_)) = read_frame::<ToParent>(&mut from_worker) {}
    let mut from_parent = data;
    while let Ok(Some(_)) = read_frame::<ToWorker>(&mut from_parent) {}
});
