//! The parts of the gRPC wire protocol that steadfast reads and writes: status codes, the
//! `grpc-timeout` header, and how a request says it is gRPC.

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `grpc-status`: the status code of a call, in the headers of a trailers-only response or in
/// the trailers.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the percent-encoded status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`: the time the caller still allows for the call.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// A gRPC status code (see `grpc/doc/statuscodes.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Not an error.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, including statuses this library does not know.
    Unknown = 2,
    /// The client gave an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity a client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted, for example a quota or the server's capacity.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or supported.
    Unimplemented = 12,
    /// An internal invariant was broken.
    Internal = 13,
    /// The service is currently unavailable; retrying with backoff may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request lacks valid authentication credentials.
    Unauthenticated = 16,
}

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const CODE_VALUES: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code for a numeric value; values outside 0..=16 are `Unknown`, as the gRPC spec says.
    pub fn from_i32(value: i32) -> Code {
        usize::try_from(value)
            .ok()
            .and_then(|index| Code::ALL.get(index).copied())
            .unwrap_or(Code::Unknown)
    }

    /// The code in a `grpc-status` header value; a value that is not a number is `Unknown`.
    pub fn from_header_value(value: &HeaderValue) -> Code {
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32)
    }

    /// The code in the `grpc-status` entry of a header map (headers or trailers), if present.
    pub fn from_headers(headers: &HeaderMap) -> Option<Code> {
        headers.get(GRPC_STATUS).map(Code::from_header_value)
    }

    /// The canonical name, as OpenTelemetry's `rpc.status_code` uses it: `"DEADLINE_EXCEEDED"`.
    pub fn as_str(self) -> &'static str {
        CODE_NAMES[self as usize]
    }

    /// The numeric value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The value of a `grpc-status` header carrying this code.
    pub fn to_header_value(self) -> HeaderValue {
        HeaderValue::from_static(CODE_VALUES[self as usize])
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request (or response) is gRPC: its `content-type` starts with `application/grpc`
/// (this covers `application/grpc+proto`, `application/grpc-web` and the like).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The method of a gRPC request path (`/package.Service/Method` gives `package.Service/Method`),
/// if the path has that shape: identifiers (ASCII letters, digits, `_`) with dots between the
/// package parts, at most 256 bytes. Anything else is no method a server could have, and must
/// not become a key of per-route state or a metric label.
pub(crate) fn method_key(path: &str) -> Option<&str> {
    let key = path.strip_prefix('/')?;
    if key.len() > 256 {
        return None;
    }
    let (service, method) = key.split_once('/')?;
    let identifier = |part: &str| {
        part.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    (service.split('.').all(identifier) && identifier(method)).then_some(key)
}

/// Why a `grpc-timeout` value could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutParseError {
    /// The value has no digits before its unit (or is empty).
    MissingValue,
    /// The value has more than the 8 digits the spec allows.
    TooManyDigits,
    /// A character that is not an ASCII digit stands where digits belong.
    NotADigit,
    /// The last character is not one of the units `H M S m u n`.
    UnknownUnit,
}

impl TimeoutParseError {
    /// What is wrong, in a few words.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingValue => "no value before the unit",
            Self::TooManyDigits => "more than 8 digits",
            Self::NotADigit => "the value is not a decimal number",
            Self::UnknownUnit => "the unit is not one of H, M, S, m, u, n",
        }
    }
}

impl fmt::Display for TimeoutParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for TimeoutParseError {}

/// The most digits a `grpc-timeout` value may have.
const MAX_TIMEOUT_DIGITS: usize = 8;

/// Reads a `grpc-timeout` value: 1 to 8 ASCII digits followed by one unit, `H` (hours),
/// `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).
///
/// Nothing else is accepted: no sign, no spaces, no empty value. Any byte string is safe to pass.
///
/// # Errors
///
/// A [`TimeoutParseError`] saying what is wrong with the value.
///
/// ```
/// use std::time::Duration;
/// use steadfast::core::grpc::parse_timeout;
///
/// assert_eq!(parse_timeout(b"250m"), Ok(Duration::from_millis(250)));
/// assert!(parse_timeout(b"123456789S").is_err());
/// ```
pub fn parse_timeout(value: &[u8]) -> Result<Duration, TimeoutParseError> {
    let Some((&unit, digits)) = value.split_last() else {
        return Err(TimeoutParseError::MissingValue);
    };
    if digits.is_empty() {
        return Err(TimeoutParseError::MissingValue);
    }
    if digits.len() > MAX_TIMEOUT_DIGITS {
        return Err(TimeoutParseError::TooManyDigits);
    }
    let mut amount: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(TimeoutParseError::NotADigit);
        }
        // At most 8 digits, so this cannot overflow a u64.
        amount = amount * 10 + u64::from(digit - b'0');
    }
    Ok(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return Err(TimeoutParseError::UnknownUnit),
    })
}

/// Writes a duration as a `grpc-timeout` value in the finest unit whose value fits in 8 digits.
///
/// Rounding is down, so the receiver's deadline is never later than ours; a duration beyond
/// 99,999,999 hours is written as that maximum.
///
/// ```
/// use std::time::Duration;
/// use steadfast::core::grpc::encode_timeout;
///
/// assert_eq!(encode_timeout(Duration::from_millis(20)), "20000000n");
/// assert_eq!(encode_timeout(Duration::from_secs(2)), "2000000u");
/// ```
pub fn encode_timeout(duration: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = duration.as_nanos();
    let (amount, unit) = [
        (1u128, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ]
    .into_iter()
    .map(|(nanos_per_unit, unit)| (nanos / nanos_per_unit, unit))
    .find(|&(amount, _)| amount <= MAX)
    .unwrap_or((MAX, b'H'));
    let mut text = amount.to_string().into_bytes();
    text.push(unit);
    HeaderValue::from_bytes(&text).expect("digits and an ASCII unit are a valid header value")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_unit_parses() {
        let cases: [(&[u8], Duration); 6] = [
            (b"2H", Duration::from_secs(7200)),
            (b"3M", Duration::from_secs(180)),
            (b"4S", Duration::from_secs(4)),
            (b"5m", Duration::from_millis(5)),
            (b"6u", Duration::from_micros(6)),
            (b"7n", Duration::from_nanos(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_timeout(text),
                Ok(expected),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn eight_digits_and_leading_zeros_are_accepted() {
        assert_eq!(
            parse_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse_timeout(b"00000010m"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_timeout(b"0n"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_values_are_errors() {
        use TimeoutParseError::*;
        let cases: [(&[u8], TimeoutParseError); 11] = [
            (b"", MissingValue),
            (b"S", MissingValue),
            (b"123456789S", TooManyDigits),
            (b"10", UnknownUnit),
            (b"10s", UnknownUnit),
            (b"10ms", NotADigit),
            (b"-1S", NotADigit),
            (b"+1S", NotADigit),
            (b" 1S", NotADigit),
            (b"1.5S", NotADigit),
            (b"\xff\xfeS", NotADigit),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_timeout(text),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn encoding_picks_the_finest_unit_that_fits() {
        assert_eq!(encode_timeout(Duration::from_nanos(1)), "1n");
        assert_eq!(
            encode_timeout(Duration::from_nanos(99_999_999)),
            "99999999n"
        );
        assert_eq!(encode_timeout(Duration::from_nanos(100_000_001)), "100000u");
        assert_eq!(encode_timeout(Duration::from_secs(3600)), "3600000m");
        assert_eq!(encode_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(encode_timeout(Duration::MAX), "99999999H");
    }

    #[test]
    fn status_codes_round_trip_and_unknown_values_map_to_unknown() {
        for code in Code::ALL {
            assert_eq!(Code::from_header_value(&code.to_header_value()), code);
            assert_eq!(Code::from_i32(i32::from(code.as_u8())), code);
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(
            Code::from_header_value(&HeaderValue::from_static("abc")),
            Code::Unknown
        );
        assert_eq!(Code::DeadlineExceeded.as_str(), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn grpc_is_detected_from_the_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_grpc(&headers));
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web+proto",
        ] {
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(grpc));
            assert!(is_grpc(&headers), "{grpc}");
        }
    }

    proptest! {
        // Untrusted input: any bytes at all must give a value or an error, never a panic.
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse_timeout(&bytes);
        }

        #[test]
        fn encoded_timeouts_parse_back_no_later_than_the_original(nanos in any::<u64>()) {
            let original = Duration::from_nanos(nanos);
            let parsed = parse_timeout(encode_timeout(original).as_bytes()).unwrap();
            prop_assert!(parsed <= original);
            // The next finer unit held more than 8 digits, so rounding down loses < 1/100,000.
            prop_assert!(original - parsed <= original / 100_000);
        }
    }
}
