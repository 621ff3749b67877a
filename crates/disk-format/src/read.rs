//! Where the inspector's bytes come from, and the bounds on what it reads.

use std::error::Error;
use std::fmt;

use crate::error::{InspectError, Structure};

/// Random-access reads of an image: a local file, a range of an object in a block store,
/// bytes in memory. The inspector never asks for bytes past the length it was given, and
/// expects exactly `len` bytes back.
pub trait ReadAt: Sync {
    type Error: Error + Send + Sync + 'static;

    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    type Error = T::Error;

    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send {
        (**self).read_at(offset, len)
    }
}

/// An image held in memory.
impl ReadAt for [u8] {
    type Error = OutOfBounds;

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, OutOfBounds> {
        let out_of_bounds = OutOfBounds {
            offset,
            len,
            available: self.len(),
        };
        let start = usize::try_from(offset).map_err(|_| out_of_bounds.clone())?;
        let end = start.checked_add(len).ok_or(out_of_bounds.clone())?;
        self.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or(out_of_bounds)
    }
}

/// A read past the end of an image held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfBounds {
    pub offset: u64,
    pub len: usize,
    pub available: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at offset {} lie past the end of {} bytes",
            self.len, self.offset, self.available
        )
    }
}

impl Error for OutOfBounds {}

/// The most metadata one inspection reads, whatever the header claims: a hostile header
/// cannot make the inspector read (or hold) more. Real images stay far below it: a 16 TiB
/// disk with 64 KiB clusters has a 256 KiB L1 table.
pub const MAX_METADATA_READ: u64 = 64 << 20;

/// The largest single read asked of the source, so that a large table arrives in pieces
/// (a range request each, for an object store).
const READ_CHUNK: u64 = 1 << 20;

/// A source with the file's length and the metadata budget: every read is checked to lie
/// within the file and to fit the budget before it is made.
pub(crate) struct Reader<'a, R: ?Sized> {
    source: &'a R,
    pub(crate) file_len: u64,
    spent: u64,
}

impl<'a, R: ReadAt + ?Sized> Reader<'a, R> {
    pub(crate) fn new(source: &'a R, file_len: u64) -> Reader<'a, R> {
        Reader {
            source,
            file_len,
            spent: 0,
        }
    }

    /// Refuses a range that does not lie within the file.
    pub(crate) fn check_within(
        &self,
        structure: Structure,
        offset: u64,
        len: u64,
    ) -> Result<(), InspectError> {
        let within = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.file_len);
        if within {
            Ok(())
        } else {
            Err(InspectError::Truncated {
                structure,
                offset,
                len,
                file_len: self.file_len,
            })
        }
    }

    /// `len` bytes at `offset`, which must lie within the file and fit the budget.
    pub(crate) async fn read(
        &mut self,
        structure: Structure,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, InspectError> {
        self.check_within(structure, offset, len)?;
        let needed = self.spent.saturating_add(len);
        let too_large = || InspectError::MetadataTooLarge {
            structure,
            needed,
            max: MAX_METADATA_READ,
        };
        if needed > MAX_METADATA_READ {
            return Err(too_large());
        }
        let capacity = usize::try_from(len).map_err(|_| too_large())?;
        self.spent = needed;
        let mut bytes = Vec::with_capacity(capacity);
        let mut at = offset;
        let end = offset + len;
        while at < end {
            let chunk_len = (end - at).min(READ_CHUNK);
            let chunk = usize::try_from(chunk_len).map_err(|_| too_large())?;
            let got =
                self.source
                    .read_at(at, chunk)
                    .await
                    .map_err(|source| InspectError::Read {
                        offset: at,
                        len: chunk,
                        source: Box::new(source),
                    })?;
            if got.len() != chunk {
                return Err(InspectError::ShortRead {
                    offset: at,
                    len: chunk,
                    got: got.len(),
                });
            }
            bytes.extend_from_slice(&got);
            at += chunk_len;
        }
        Ok(bytes)
    }
}
