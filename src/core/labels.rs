//! Label values of bounded cardinality: never raw paths or caller-chosen strings.

use std::sync::LazyLock;

use http::{Method, Version};

/// The method labels, in the order of [`method_index`].
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

/// The index in [`METHODS`] of a method: the nine standard methods, anything else `_OTHER`
/// (a caller can send any token as a method).
pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The method as OpenTelemetry names it (`_OTHER` for a non-standard one).
#[inline]
pub(crate) fn method(method: &Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The `network.protocol.version` labels, in the order of [`version_index`].
pub(crate) const VERSIONS: [&str; 6] = ["0.9", "1.0", "1.1", "2", "3", "_OTHER"];

/// The index in [`VERSIONS`] of an HTTP version.
pub(crate) fn version_index(version: Version) -> usize {
    match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_11 => 2,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 5,
    }
}

/// `network.protocol.version`.
#[cfg(all(test, not(loom)))]
pub(crate) fn version(version: Version) -> &'static str {
    VERSIONS[version_index(version)]
}

/// Every status code as a static string, so that a label costs no allocation.
static STATUS_CODES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    (0..1000u16)
        .map(|code| &*Box::leak(code.to_string().into_boxed_str()))
        .collect()
});

/// `http.response.status_code`.
pub(crate) fn status(status: http::StatusCode) -> &'static str {
    STATUS_CODES[usize::from(status.as_u16()).min(999)]
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method(&Method::GET), "GET");
        assert_eq!(method(&Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
        assert_eq!(
            method(&Method::from_bytes(b"x-anything-a-caller-wants").unwrap()),
            "_OTHER"
        );
    }

    #[test]
    fn statuses_and_versions() {
        assert_eq!(status(http::StatusCode::NOT_FOUND), "404");
        assert_eq!(status(http::StatusCode::from_u16(599).unwrap()), "599");
        assert_eq!(version(Version::HTTP_2), "2");
    }
}

/// How many label sets a [`Histograms`] keeps at hand (a power of two).
const RECENT: usize = 8;

/// The histograms of one metric's label sets, each named by a small key and registered once:
/// the label sets seen most recently sit in direct-mapped slots, so most measurements find
/// theirs with one atomic load, without hashing into the map behind them.
#[derive(Default)]
pub(crate) struct Histograms {
    recent: [std::sync::OnceLock<(u32, metrics::Histogram)>; RECENT],
    all: super::keyed::CowMap<u32, metrics::Histogram>,
}

impl Histograms {
    /// Records `value` in the histogram of label set `key`, registered by `register` on first
    /// use. The caller bounds the keys.
    #[inline]
    pub(crate) fn record(
        &self,
        key: u32,
        value: f64,
        register: impl FnOnce() -> metrics::Histogram,
    ) {
        let recent =
            &self.recent[((key ^ key >> 8 ^ key >> 16 ^ key >> 24) as usize) & (RECENT - 1)];
        if let Some((seen, histogram)) = recent.get() {
            if *seen == key {
                histogram.record(value);
                return;
            }
        }
        let histogram = self
            .all
            .get_or_insert_with(&key, || key, |_| Some(register()))
            .expect("an unbounded map always inserts");
        histogram.record(value);
        let _ = recent.set((key, histogram));
    }
}
