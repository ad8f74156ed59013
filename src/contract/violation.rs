//! Collecting violations, short and bounded.

use crate::core::Violation;

/// The longest message a violation carries, in bytes; longer ones are cut on a char boundary.
const MAX_MESSAGE: usize = 200;

/// Text cut to at most `max` bytes (plus an ellipsis).
pub(crate) fn short(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The violations of one request or response: the first `cap` listed, the rest only counted.
#[derive(Debug)]
pub(crate) struct Collector {
    listed: Vec<Violation>,
    omitted: usize,
    cap: usize,
}

impl Collector {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            listed: Vec::new(),
            omitted: 0,
            cap,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.omitted == 0
    }

    pub(crate) fn push(&mut self, pointer: &str, keyword: &'static str, message: impl AsRef<str>) {
        if self.listed.len() < self.cap {
            self.listed.push(Violation::new(
                pointer,
                keyword,
                short(message.as_ref(), MAX_MESSAGE),
            ));
        } else {
            self.omitted += 1;
        }
    }

    /// The errors of a schema validation, under `prefix` (`/body`, `/query/limit`). The
    /// messages name the failing value only as "value", so that neither a huge input nor a
    /// secret is echoed back.
    pub(crate) fn schema_errors<'a>(
        &mut self,
        prefix: &str,
        errors: impl Iterator<Item = jsonschema::ValidationError<'a>>,
    ) {
        for error in errors {
            if self.listed.len() >= self.cap {
                self.omitted += 1;
                continue;
            }
            let pointer = format!("{prefix}{}", error.instance_path().as_str());
            let message = short(&error.masked().to_string(), MAX_MESSAGE);
            let keyword = error.kind().keyword().to_owned();
            self.listed.push(Violation::new(pointer, keyword, message));
        }
    }

    pub(crate) fn into_parts(self) -> (Vec<Violation>, usize) {
        (self.listed, self.omitted)
    }

    /// A `Content-Type` the contract does not document (quoted short).
    pub(crate) fn undocumented_media_type(&mut self, given: &str) {
        self.push(
            "/content-type",
            "contentType",
            format!("`{}` is not a documented media type", short(given, 80)),
        );
    }

    pub(crate) fn omitted(&self) -> usize {
        self.omitted
    }

    pub(crate) fn listed(&self) -> &[Violation] {
        &self.listed
    }
}

/// RFC 6901 escaping of one pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_char_boundaries() {
        let text = "é".repeat(300);
        let cut = short(&text, 201);
        assert!(cut.len() <= 204);
        assert!(cut.ends_with('…'));
        assert_eq!(short("short", 200), "short");
    }

    #[test]
    fn the_cap_counts_the_rest() {
        let mut collector = Collector::new(2);
        for _ in 0..5 {
            collector.push("/body", "type", "wrong");
        }
        let (listed, omitted) = collector.into_parts();
        assert_eq!((listed.len(), omitted), (2, 3));
    }
}
