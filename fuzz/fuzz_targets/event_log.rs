//! Fuzzes the event-log reader and both of its readers' reducers: any bytes as a log
//! (what `futuretop replay` reads) must give events or clean per-line errors, and every
//! event must apply to the monitor's model and the headless summary without a panic, a
//! hang, or memory beyond the caps.
#![no_main]

use futuretop::events::LogReader;
use futuretop::model::{Keep, RunModel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut monitor = RunModel::new(Keep::All);
    let mut headless = RunModel::new(Keep::Unfinished);
    for event in LogReader::from_reader("fuzz.jsonl", std::io::Cursor::new(data.to_vec())).flatten() {
        monitor.apply(&event);
        headless.apply(&event);
    }
    let _ = monitor.summary(0);
    let _ = headless.summary(0);
    for row in monitor.rows.iter().take(64) {
        let _ = row.timeline();
    }
});
