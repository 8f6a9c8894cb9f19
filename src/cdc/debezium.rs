//! placeholder: replaced by the real decoder
use super::{DecodeError, Decoded};
pub fn decode(_bytes: &[u8]) -> Result<Decoded, DecodeError> {
    Err(DecodeError::new("not yet implemented"))
}
