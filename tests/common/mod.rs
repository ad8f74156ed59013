//! Helpers shared by the integration tests.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

pub mod grpc;

use std::sync::{Arc, Mutex};

/// Collects what a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The counters named `name` in a debugging recorder's snapshot: the values of `labels` (in
/// that order) and the count of each series.
pub fn counters(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
    labels: &[&str],
) -> Vec<(Vec<String>, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == name)
        .map(|(key, _, _, value)| {
            let values = labels
                .iter()
                .map(|label| {
                    key.key()
                        .labels()
                        .find(|l| l.key() == *label)
                        .map_or_else(String::new, |l| l.value().to_owned())
                })
                .collect();
            let metrics_util::debugging::DebugValue::Counter(count) = value else {
                panic!("{name} is a counter")
            };
            (values, count)
        })
        .collect()
}

/// The rows of the table in the README section under `heading` (up to the next heading), one
/// `Vec` of trimmed cells per row that starts with a code cell.
pub fn readme_table(heading: &str) -> Vec<Vec<String>> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has a `{heading}` section"));
    section
        .lines()
        .take_while(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}
