//! Criticality: which requests to keep when not all can be served.

use std::fmt;
use std::str::FromStr;

/// How much a request matters, in the four classes of Google's SRE practice, lowest first.
///
/// Under overload the shedder rejects the lowest classes first. A request's class comes from
/// its extensions (set by code you trust), else from a request header if one is configured
/// (capped, since callers are not trusted to rate themselves), else from the route's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    /// Traffic that can be dropped at once: prefetches, batch jobs, retries of best-effort work.
    Sheddable = 0,
    /// Traffic that may be dropped, but not first.
    SheddablePlus = 1,
    /// The default: user-facing traffic that must be served unless the service cannot.
    Critical = 2,
    /// The traffic that matters most: kept while anything at all is served.
    CriticalPlus = 3,
}

/// One value per criticality class, lowest class first (indexed by [`Criticality::ALL`]'s order).
pub type PerClass<T> = [T; Criticality::COUNT];

impl Criticality {
    /// How many classes there are.
    pub const COUNT: usize = 4;

    /// Every class, lowest first.
    pub const ALL: [Criticality; Criticality::COUNT] = [
        Criticality::Sheddable,
        Criticality::SheddablePlus,
        Criticality::Critical,
        Criticality::CriticalPlus,
    ];

    /// A short, stable name for logs and metric labels: `"critical_plus"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Sheddable => "sheddable",
            Criticality::SheddablePlus => "sheddable_plus",
            Criticality::Critical => "critical",
            Criticality::CriticalPlus => "critical_plus",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl serde::Serialize for Criticality {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Criticality {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A criticality name that is not one of the four.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCriticality;

impl fmt::Display for UnknownCriticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("criticality is one of critical_plus, critical, sheddable_plus, sheddable")
    }
}

impl std::error::Error for UnknownCriticality {}

impl FromStr for Criticality {
    type Err = UnknownCriticality;

    /// Accepts the names in any case, with `_`, `-` or nothing between the words
    /// (`CRITICAL_PLUS`, `critical-plus`, `CriticalPlus`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut normalized = [0u8; 16];
        let mut length = 0;
        for byte in text
            .trim()
            .bytes()
            .filter(|byte| *byte != b'_' && *byte != b'-')
        {
            if length == normalized.len() {
                return Err(UnknownCriticality);
            }
            normalized[length] = byte.to_ascii_lowercase();
            length += 1;
        }
        match &normalized[..length] {
            b"sheddable" => Ok(Criticality::Sheddable),
            b"sheddableplus" => Ok(Criticality::SheddablePlus),
            b"critical" => Ok(Criticality::Critical),
            b"criticalplus" => Ok(Criticality::CriticalPlus),
            _ => Err(UnknownCriticality),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_parse_in_every_usual_spelling() {
        for (text, class) in [
            ("critical_plus", Criticality::CriticalPlus),
            ("CRITICAL_PLUS", Criticality::CriticalPlus),
            ("critical-plus", Criticality::CriticalPlus),
            ("CriticalPlus", Criticality::CriticalPlus),
            (" critical ", Criticality::Critical),
            ("SHEDDABLE_PLUS", Criticality::SheddablePlus),
            ("sheddable", Criticality::Sheddable),
        ] {
            assert_eq!(text.parse(), Ok(class), "{text}");
        }
        for bad in ["", "urgent", "critical_plus_plus_plus_plus", "crit"] {
            assert_eq!(bad.parse::<Criticality>(), Err(UnknownCriticality), "{bad}");
        }
        assert!(Criticality::Sheddable < Criticality::CriticalPlus);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = text.parse::<Criticality>();
        }
    }
}
