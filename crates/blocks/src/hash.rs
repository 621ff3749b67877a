//! Pithos block hashing: block hashes, the Merkle root of a hashmap, and a streaming chunker
//! that cuts an upload into blocks as it arrives.

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The size of a full block: every block of an object but its last is exactly this long.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// The SHA-256 of a block with its trailing zero bytes stripped; also the type of a Merkle
/// root. Shown, parsed and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// The hash of the empty block, which is also the Merkle root of an empty hashmap.
    pub fn empty() -> BlockHash {
        BlockHash(Sha256::digest(b"").into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the digest's length.
        if hex::encode_to_slice(self.0, &mut buf).is_err() {
            return Err(fmt::Error);
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid block hash {input:?}: expected 64 hex digits")]
pub struct ParseBlockHashError {
    pub input: String,
}

impl FromStr for BlockHash {
    type Err = ParseBlockHashError;

    /// Accepts lower or upper case hex; [`fmt::Display`] always writes lower case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        match hex::decode_to_slice(s, &mut out) {
            Ok(()) => Ok(BlockHash(out)),
            Err(_) => Err(ParseBlockHashError {
                input: s.chars().take(80).collect(),
            }),
        }
    }
}

impl Serialize for BlockHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BlockHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `data` without its trailing zero bytes: the part of a block that is hashed and stored.
pub fn strip_trailing_zeros(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

/// The Pithos hash of a block: SHA-256 of the block with trailing zero bytes stripped, so a
/// block and the same block padded with zeros have the same hash.
pub fn hash_block(data: &[u8]) -> BlockHash {
    BlockHash(Sha256::digest(strip_trailing_zeros(data)).into())
}

/// The Pithos hash of a hashmap (`X-Object-Hash`): the SHA-256 of nothing for an empty
/// list; the only hash of a one-block list; otherwise the list padded with all-zero hashes
/// to the next power of two, then pairs of raw digests hashed together, level by level,
/// until one remains.
pub fn merkle_root(hashes: &[BlockHash]) -> BlockHash {
    match hashes {
        [] => return BlockHash::empty(),
        [only] => return *only,
        _ => {}
    }
    let width = hashes.len().next_power_of_two();
    let mut level: Vec<[u8; 32]> = Vec::with_capacity(width);
    level.extend(hashes.iter().map(|h| h.0));
    level.resize(width, [0u8; 32]);
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut hasher = Sha256::new();
                hasher.update(pair[0]);
                hasher.update(pair[1]);
                hasher.finalize().into()
            })
            .collect();
    }
    BlockHash(level[0])
}

/// Cuts a stream of byte chunks of any sizes into blocks of exactly [`BLOCK_SIZE`] (and a
/// final shorter one), holding at most one block in memory.
///
/// ```
/// # use bytes::Bytes;
/// # use nefos_blocks::Chunker;
/// let mut chunker = Chunker::with_block_size(4);
/// let mut blocks = Vec::new();
/// for piece in [&b"abc"[..], b"defgh", b"ij"] {
///     let mut piece = Bytes::copy_from_slice(piece);
///     while let Some(block) = chunker.next_block(&mut piece) {
///         blocks.push(block);
///     }
/// }
/// blocks.extend(chunker.finish());
/// assert_eq!(blocks, [&b"abcd"[..], b"efgh", b"ij"]);
/// ```
#[derive(Debug)]
pub struct Chunker {
    block_size: usize,
    buf: BytesMut,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::new()
    }
}

impl Chunker {
    /// A chunker of [`BLOCK_SIZE`] blocks.
    pub fn new() -> Chunker {
        Chunker::with_block_size(BLOCK_SIZE)
    }

    /// A chunker of `block_size`-byte blocks (at least 1).
    pub fn with_block_size(block_size: usize) -> Chunker {
        Chunker {
            block_size: block_size.max(1),
            buf: BytesMut::new(),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes held that do not yet make a complete block.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes from the front of `data` until a block is complete and returns it, or
    /// takes all of `data` and returns `None`. Call it again while it returns a block.
    /// Whole blocks at the front of `data` are returned without copying when nothing is
    /// buffered.
    pub fn next_block(&mut self, data: &mut Bytes) -> Option<Bytes> {
        if self.buf.is_empty() && data.len() >= self.block_size {
            return Some(data.split_to(self.block_size));
        }
        let wanted = self.block_size - self.buf.len();
        let take = wanted.min(data.len());
        if self.buf.capacity() < self.block_size {
            self.buf.reserve(self.block_size - self.buf.len());
        }
        self.buf.extend_from_slice(&data.split_to(take));
        if self.buf.len() == self.block_size {
            Some(self.buf.split().freeze())
        } else {
            None
        }
    }

    /// Like [`Chunker::next_block`] for borrowed bytes: takes from the front of `data`,
    /// advancing it, and returns a block when one is complete.
    pub fn next_block_from_slice(&mut self, data: &mut &[u8]) -> Option<Bytes> {
        let wanted = self.block_size - self.buf.len();
        let take = wanted.min(data.len());
        if self.buf.is_empty() && take == self.block_size {
            let block = Bytes::copy_from_slice(&data[..take]);
            *data = &data[take..];
            return Some(block);
        }
        if self.buf.capacity() < self.block_size {
            self.buf.reserve(self.block_size - self.buf.len());
        }
        self.buf.extend_from_slice(&data[..take]);
        *data = &data[take..];
        if self.buf.len() == self.block_size {
            Some(self.buf.split().freeze())
        } else {
            None
        }
    }

    /// The final, shorter block, if any bytes are left; `None` when the stream was empty or
    /// ended on a block boundary.
    pub fn finish(self) -> Option<Bytes> {
        if self.buf.is_empty() {
            None
        } else {
            Some(self.buf.freeze())
        }
    }
}

/// Hashes a stream of byte chunks block by block, for callers that want the hashmap of
/// bytes without storing them (a client computing what to upload, a check of a download).
/// Hashing is CPU work: call it off the async reactor for large inputs.
#[derive(Debug, Default)]
pub struct StreamHasher {
    chunker: Chunker,
    hashes: Vec<BlockHash>,
    bytes: u64,
}

/// The hashmap of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashmap {
    /// The hash of each block, in order.
    pub hashes: Vec<BlockHash>,
    /// The length of the stream.
    pub bytes: u64,
}

impl Hashmap {
    /// The Pithos Merkle root of the block hashes (`X-Object-Hash`).
    pub fn root(&self) -> BlockHash {
        merkle_root(&self.hashes)
    }
}

impl StreamHasher {
    /// A hasher of [`BLOCK_SIZE`] blocks.
    pub fn new() -> StreamHasher {
        StreamHasher::default()
    }

    /// A hasher of `block_size`-byte blocks (for tests and foreign block sizes).
    pub fn with_block_size(block_size: usize) -> StreamHasher {
        StreamHasher {
            chunker: Chunker::with_block_size(block_size),
            hashes: Vec::new(),
            bytes: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        while let Some(block) = self.chunker.next_block_from_slice(&mut data) {
            self.hashes.push(hash_block(&block));
        }
    }

    pub fn finish(mut self) -> Hashmap {
        if let Some(last) = self.chunker.finish() {
            self.hashes.push(hash_block(&last));
        }
        Hashmap {
            hashes: self.hashes,
            bytes: self.bytes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn h(hex: &str) -> BlockHash {
        hex.parse().unwrap()
    }

    // Expected values computed independently with Python's hashlib:
    //   H = lambda b: hashlib.sha256(b).digest(); hash_block = H(b.rstrip(b'\0'))
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    const B: &str = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
    const C: &str = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";

    #[test]
    fn block_hash_known_vectors() {
        assert_eq!(hash_block(b""), h(EMPTY));
        assert_eq!(BlockHash::empty(), h(EMPTY));
        assert_eq!(hash_block(b"abc"), h(ABC));
        // Trailing zeros do not count; inner zeros do.
        assert_eq!(hash_block(b"abc\0\0\0"), h(ABC));
        assert_eq!(
            hash_block(b"a\0b"),
            h("59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138")
        );
        assert_eq!(hash_block(&vec![0u8; BLOCK_SIZE]), h(EMPTY));
    }

    #[test]
    fn merkle_root_known_vectors() {
        let (a, b, c) = (h(A), h(B), h(C));
        assert_eq!(hash_block(b"a"), a);
        assert_eq!(merkle_root(&[]), h(EMPTY));
        assert_eq!(merkle_root(&[a]), a);
        // python: H(a + b)
        assert_eq!(
            merkle_root(&[a, b]),
            h("e5a01fee14e0ed5c48714f22180f25ad8365b53f9779f79dc4a3d7e93963f94a")
        );
        // python: H(H(a + b) + H(c + b'\0' * 32))
        assert_eq!(
            merkle_root(&[a, b, c]),
            h("d0a664079d491a97357efa1ce1eab5aeb566adef78a2b910e8d13e901e192832")
        );
        // five hashes pad to eight
        assert_eq!(
            merkle_root(&[a, b, c, a, b]),
            h("3e82cbbb494969fa50724638ca4baca3caa3c793a9f7d224b6f49c3f34244d2e")
        );
    }

    #[test]
    fn multi_block_stream_known_vectors() {
        // python: data = bytes(i % 251 for i in range(2 * B + 1000)), B = 4 MiB
        let data: Vec<u8> = (0..2 * BLOCK_SIZE + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut hasher = StreamHasher::new();
        for piece in data.chunks(1_000_003) {
            hasher.update(piece);
        }
        let map = hasher.finish();
        assert_eq!(map.bytes, data.len() as u64);
        assert_eq!(
            map.hashes,
            [
                h("a117210941a0b00dcb2d8577e680d84b6fa0eaf760d2afc654c953b9859d54fa"),
                h("9889e2ef8bd7d8fea5ef99243b7784ecd8deaf613bdb7a6c0b3ac56f23078303"),
                h("5e53e87b241dd242dda623e42f70c4515f98a4eb6d08e7486e4fceb4000334f8"),
            ]
        );
        assert_eq!(
            map.root(),
            h("142281060feb721b3bfc1d2a8cbf059000abd0a9510122d1ebdae101deea97bf")
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let abc = h(ABC);
        assert_eq!(abc.to_string(), ABC);
        assert_eq!(abc.to_hex(), ABC);
        assert_eq!(ABC.to_uppercase().parse::<BlockHash>().unwrap(), abc);
        assert!("abc".parse::<BlockHash>().is_err());
        assert!(ABC.replace('b', "g").parse::<BlockHash>().is_err());
        assert!(format!("{ABC}00").parse::<BlockHash>().is_err());
        let json = serde_json::to_string(&abc).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<BlockHash>(&json).unwrap(), abc);
        assert!(serde_json::from_str::<BlockHash>("\"zz\"").is_err());
    }

    #[test]
    fn empty_stream_has_no_blocks() {
        let map = StreamHasher::new().finish();
        assert!(map.hashes.is_empty());
        assert_eq!(map.bytes, 0);
        assert_eq!(map.root(), h(EMPTY));
        assert_eq!(Chunker::new().finish(), None);
    }

    #[test]
    fn chunker_passes_whole_blocks_without_copying() {
        let mut chunker = Chunker::with_block_size(4);
        let source = Bytes::from_static(b"abcdefghij");
        let mut data = source.clone();
        let first = chunker.next_block(&mut data).unwrap();
        assert_eq!(first.as_ptr(), source.as_ptr());
        assert_eq!(&first[..], b"abcd");
        assert_eq!(&chunker.next_block(&mut data).unwrap()[..], b"efgh");
        assert_eq!(chunker.next_block(&mut data), None);
        assert!(data.is_empty());
        assert_eq!(chunker.buffered(), 2);
        assert_eq!(&chunker.finish().unwrap()[..], b"ij");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Cuts `data` at the given (sorted, deduplicated) offsets.
        fn split_at<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&data[start..cut]);
                start = cut;
            }
            pieces.push(&data[start..]);
            pieces
        }

        fn reference(data: &[u8], block_size: usize) -> Vec<BlockHash> {
            data.chunks(block_size).map(hash_block).collect()
        }

        fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
            // Plenty of zeros, so blocks with trailing zeros are common.
            prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..300)
        }

        proptest! {
            #[test]
            fn chunked_bytes_hash_like_the_whole(
                data in data_strategy(),
                cuts in prop::collection::vec(any::<usize>(), 0..12),
                block_size in 1usize..64,
            ) {
                let mut chunker = Chunker::with_block_size(block_size);
                let mut blocks = Vec::new();
                for piece in split_at(&data, &cuts) {
                    let mut piece = Bytes::copy_from_slice(piece);
                    while let Some(block) = chunker.next_block(&mut piece) {
                        prop_assert_eq!(block.len(), block_size);
                        blocks.push(block);
                    }
                    prop_assert!(piece.is_empty());
                    prop_assert!(chunker.buffered() < block_size);
                }
                blocks.extend(chunker.finish());
                let joined: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
                prop_assert_eq!(&joined, &data);
                let hashes: Vec<BlockHash> = blocks.iter().map(|b| hash_block(b)).collect();
                prop_assert_eq!(hashes, reference(&data, block_size));
            }

            #[test]
            fn stream_hasher_matches_whole(
                data in data_strategy(),
                cuts in prop::collection::vec(any::<usize>(), 0..12),
                block_size in 1usize..64,
            ) {
                let mut hasher = StreamHasher::with_block_size(block_size);
                for piece in split_at(&data, &cuts) {
                    hasher.update(piece);
                }
                let map = hasher.finish();
                prop_assert_eq!(map.bytes, data.len() as u64);
                let whole = reference(&data, block_size);
                prop_assert_eq!(map.root(), merkle_root(&whole));
                prop_assert_eq!(map.hashes, whole);
            }

            #[test]
            fn padding_with_zeros_keeps_the_hash(
                data in data_strategy(),
                zeros in 0usize..100,
            ) {
                let mut padded = data.clone();
                padded.resize(data.len() + zeros, 0);
                prop_assert_eq!(hash_block(&padded), hash_block(&data));
                prop_assert_eq!(strip_trailing_zeros(&padded), strip_trailing_zeros(&data));
            }

            #[test]
            fn hex_round_trips(bytes in any::<[u8; 32]>()) {
                let hash = BlockHash(bytes);
                prop_assert_eq!(hash.to_string().parse::<BlockHash>().unwrap(), hash);
            }
        }
    }
}
