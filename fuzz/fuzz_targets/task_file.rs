//! Fuzzes the task-file loader and validator: any bytes, as a task file, must give a
//! plan or a list of `FILE:LINE:COL` errors (offline: no Slurm cluster is asked) — never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The loader takes text (a file that is not UTF-8 is refused before parsing).
    let Ok(text) = std::str::from_utf8(data) else { return };
    match futuretop::config::load_str_offline("fuzz.yaml", "fuzz", text) {
        Ok(plan) => assert!(plan.tasks.iter().all(|t| !t.name.is_empty())),
        Err(errors) => {
            let shown = errors.to_string();
            assert!(shown.starts_with("fuzz.yaml:"), "an error without its place: {shown}");
        }
    }
});
