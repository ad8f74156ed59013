//! gRPC's length-prefixed message framing, followed across chunk boundaries: what the contract
//! layer reads of a request stream, and what the request body checks while it streams.
// Only the contract layer frames requests so far.
#![cfg_attr(not(feature = "contract"), allow(dead_code))]

use std::fmt;

/// A request message larger than the method allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageTooLarge {
    /// The length the frame declared.
    pub declared: u64,
    /// The method's maximum.
    pub max: usize,
}

impl fmt::Display for MessageTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a request message of {} bytes is larger than the {} allowed",
            self.declared, self.max
        )
    }
}

impl std::error::Error for MessageTooLarge {}

/// The gRPC frame header: a compressed flag and a big-endian 32-bit length.
pub(crate) const FRAME_HEADER: usize = 5;

/// Follows the length-prefixed frames of a gRPC stream across chunk boundaries and fails on a
/// frame larger than the maximum, before its bytes arrive.
#[derive(Clone, Debug)]
pub(crate) struct FrameChecker {
    max: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    remaining: u64,
}

impl FrameChecker {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            header: [0; FRAME_HEADER],
            header_len: 0,
            remaining: 0,
        }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), MessageTooLarge> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (FRAME_HEADER - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == FRAME_HEADER {
                self.header_len = 0;
                let declared = u64::from(u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]));
                if declared > self.max as u64 {
                    return Err(MessageTooLarge {
                        declared,
                        max: self.max,
                    });
                }
                self.remaining = declared;
            }
        }
        Ok(())
    }
}

/// What the first frame of `read` says, once enough of it has arrived.
pub(crate) enum FirstFrame<'a> {
    /// More bytes are needed.
    Incomplete,
    /// The frame declares more than the maximum.
    TooLarge(MessageTooLarge),
    /// The whole first message, and whether it is compressed.
    Complete { message: &'a [u8], compressed: bool },
}

pub(crate) fn first_frame(read: &[u8], max: usize) -> FirstFrame<'_> {
    if read.len() < FRAME_HEADER {
        return FirstFrame::Incomplete;
    }
    let declared = u64::from(u32::from_be_bytes([read[1], read[2], read[3], read[4]]));
    if declared > max as u64 {
        return FirstFrame::TooLarge(MessageTooLarge { declared, max });
    }
    let end = FRAME_HEADER + declared as usize;
    if read.len() < end {
        return FirstFrame::Incomplete;
    }
    FirstFrame::Complete {
        message: &read[FRAME_HEADER..end],
        compressed: read[0] & 1 == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut frame = vec![0];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend(std::iter::repeat_n(7u8, len as usize));
        frame
    }

    proptest! {
        #[test]
        fn frames_are_followed_across_any_split(lens in prop::collection::vec(0u32..64, 1..6), cut in 0usize..400, max in 0usize..64) {
            let stream: Vec<u8> = lens.iter().flat_map(|&len| frame(len)).collect();
            let cut = cut.min(stream.len());
            let mut checker = FrameChecker::new(max);
            let result = checker.feed(&stream[..cut]).and_then(|()| checker.feed(&stream[cut..]));
            let too_large = lens.iter().any(|&len| len as usize > max);
            prop_assert_eq!(result.is_err(), too_large);
        }
    }

    #[test]
    fn the_first_frame_is_read_once_complete() {
        let bytes = Bytes::from(frame(3));
        assert!(matches!(
            first_frame(&bytes.slice(..4), 10),
            FirstFrame::Incomplete
        ));
        assert!(matches!(
            first_frame(&bytes.slice(..6), 10),
            FirstFrame::Incomplete
        ));
        assert!(matches!(
            first_frame(&bytes, 10),
            FirstFrame::Complete {
                message: [7, 7, 7],
                compressed: false
            }
        ));
        assert!(matches!(first_frame(&bytes, 2), FirstFrame::TooLarge(_)));
    }
}
