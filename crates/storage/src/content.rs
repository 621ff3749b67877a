//! What a GET serves: the bytes of an object, or of the segments a large-object manifest
//! names (Swift's DLO and SLO), as one sequence that ranges apply to.
//!
//! An object whose hashmap covers its size (every plain object, and every static manifest
//! whose segments line up with blocks) is served straight from its blocks. Other static
//! manifests, and dynamic ones, are resolved into pieces — windows of the hashmaps of
//! their segments' current versions — when the request arrives, so a missing or changed
//! segment is an error before the first byte is sent rather than a truncated body. Inline
//! data of a static manifest is a piece of its own.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, Stream, StreamExt};
use md5::{Digest, Md5};
use nefos_blocks::{BLOCK_SIZE, BlockHash};

use crate::download::{self, ByteRange};
use crate::listing::{ListEntry, ListQuery};
use crate::manifest::{self, StoredSegment};
use crate::{Accessor, ObjectInfo, Storage, StorageError, VersionSelector};

/// How deeply static manifests may nest (Swift's `max_slo_recursion_depth`).
pub(crate) const MAX_DEPTH: usize = 10;

/// What one read resolves before its first byte, at most: manifests that name the same
/// nested manifest over and over would otherwise make one GET hold millions of pieces,
/// or the same inline data many times over, in memory.
const MAX_PIECES: usize = 100_000;
const MAX_INLINE_BYTES: u64 = 64 * 1024 * 1024;

/// What a read has resolved so far, against those bounds.
#[derive(Debug, Default)]
struct Resolved {
    pieces: usize,
    inline_bytes: u64,
}

impl Resolved {
    fn add(&mut self, pieces: usize, inline_bytes: u64) -> Result<(), StorageError> {
        self.pieces += pieces;
        self.inline_bytes += inline_bytes;
        if self.pieces > MAX_PIECES || self.inline_bytes > MAX_INLINE_BYTES {
            return Err(StorageError::Conflict {
                reason: "the large object has more segments than one read resolves",
            });
        }
        Ok(())
    }
}

/// The bytes a GET of an object serves, resolved through its manifest if it has one.
#[derive(Debug, Clone)]
pub struct Content {
    size: u64,
    /// `None` while an MD5 it depends on is still being computed.
    etag: Option<String>,
    /// `None` when only described (see [`Content::described`]).
    pieces: Option<Vec<Piece>>,
}

/// A window of one stored hashmap, or of bytes held in memory.
#[derive(Debug, Clone)]
struct Piece {
    source: Source,
    first: u64,
    len: u64,
}

#[derive(Debug, Clone)]
enum Source {
    Blocks {
        hashes: Arc<Vec<BlockHash>>,
        /// The size of the object the hashmap is of, which fixes the length of its last
        /// block.
        size: u64,
    },
    /// A static manifest's inline data.
    Inline(Bytes),
}

impl Content {
    /// Bytes in all.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The ETag of the whole, unquoted: the MD5 of a plain object, Swift's manifest ETag
    /// for a large object.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The size and ETag of an object as stored, without resolving the segments of a
    /// static manifest: enough for a HEAD, which Swift answers without looking at them.
    /// Its bytes cannot be read.
    pub fn described(object: &ObjectInfo) -> Content {
        Content {
            size: object.size,
            etag: object.etag.clone(),
            pieces: None,
        }
    }
}

/// Whether an object's own hashmap holds all of its bytes: true of every object but static
/// manifests whose segments do not line up with blocks.
pub fn has_own_blocks(object: &ObjectInfo) -> bool {
    object.blocks == object.size.div_ceil(BLOCK_SIZE as u64)
}

/// The parts of `pieces` that fall in `len` bytes from `first` of their concatenation.
fn window(pieces: &[Piece], first: u64, len: u64) -> Vec<Piece> {
    let end = first.saturating_add(len);
    let mut offset = 0u64;
    let mut out = Vec::new();
    for piece in pieces {
        let (start, stop) = (first.max(offset), end.min(offset + piece.len));
        if start < stop {
            out.push(Piece {
                source: piece.source.clone(),
                first: piece.first + (start - offset),
                len: stop - start,
            });
        }
        offset += piece.len;
        if offset >= end {
            break;
        }
    }
    out
}

impl Storage {
    /// What a GET of `object` serves. A dynamic manifest (`X-Object-Manifest`) is served
    /// as the concatenation of the current objects under its prefix unless `raw`; a
    /// static manifest as its segments. Segments are read as `who`, who must be allowed to.
    pub async fn content(
        &self,
        who: Accessor<'_>,
        object: &ObjectInfo,
        raw: bool,
    ) -> Result<Content, StorageError> {
        if !raw && let Some(manifest) = object.dynamic_manifest() {
            return self
                .dynamic_content(who, &object.project_id, manifest, true)
                .await;
        }
        Ok(Content {
            size: object.size,
            etag: object.etag.clone(),
            pieces: Some(
                self.pieces(who, object, 0, &mut Resolved::default())
                    .await?,
            ),
        })
    }

    /// What a HEAD of `object` describes: its size and ETag, without reading a hashmap.
    /// A dynamic manifest's are its segments' (listed as `who`, as a GET would), a static
    /// manifest's are stored with it. Its bytes cannot be read.
    pub async fn content_description(
        &self,
        who: Accessor<'_>,
        object: &ObjectInfo,
        raw: bool,
    ) -> Result<Content, StorageError> {
        match object.dynamic_manifest() {
            Some(manifest) if !raw => {
                self.dynamic_content(who, &object.project_id, manifest, false)
                    .await
            }
            _ => Ok(Content::described(object)),
        }
    }

    /// The bytes of `content`, or of `range` of them.
    pub fn read_content(
        &self,
        content: &Content,
        range: Option<ByteRange>,
    ) -> impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static {
        let (first, len) = range.map_or((0, content.size), |r| (r.first, r.len()));
        let Some(pieces) = &content.pieces else {
            // Only a described content has no pieces, and it is not meant to be read.
            let error = StorageError::Conflict {
                reason: "the segments of the large object were not resolved",
            };
            return stream::once(async move { Err(error) }).left_stream();
        };
        let blocks = self.blocks.clone();
        stream::iter(window(pieces, first, len))
            .map(move |piece| match piece.source {
                Source::Blocks { hashes, size } => download::read(
                    blocks.clone(),
                    hashes,
                    size,
                    Some(ByteRange {
                        first: piece.first,
                        last: piece.first + piece.len - 1,
                    }),
                )
                .left_stream(),
                Source::Inline(bytes) => {
                    // Windows lie within their piece, whose bytes are held whole.
                    let window = usize::try_from(piece.first)
                        .ok()
                        .zip(usize::try_from(piece.first + piece.len).ok())
                        .filter(|(first, end)| first <= end && *end <= bytes.len());
                    let chunk = match window {
                        Some((first, end)) => Ok(bytes.slice(first..end)),
                        None => Err(StorageError::Conflict {
                            reason: "a window of inline data lies outside it",
                        }),
                    };
                    stream::once(async move { chunk }).right_stream()
                }
            })
            .flatten()
            .right_stream()
    }

    /// Swift's DLO: the current objects of a container whose names start with a prefix, in
    /// name order; the ETag is the MD5 of their ETags. A missing container is no segments.
    /// Without `with_pieces` only the size and ETag are found, from the listing alone.
    async fn dynamic_content(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        manifest: &str,
        with_pieces: bool,
    ) -> Result<Content, StorageError> {
        let (container, prefix) = manifest::parse_dynamic(manifest);
        let mut query = ListQuery {
            prefix: Some(prefix),
            ..ListQuery::default()
        };
        let mut etags = Some(Md5::new());
        let mut pieces = Vec::new();
        let mut resolved = Resolved::default();
        let mut size = 0u64;
        loop {
            let page = match self.list_objects(who, project_id, &container, &query).await {
                Ok(page) => page,
                Err(StorageError::NotFound { .. }) => break,
                Err(other) => return Err(other),
            };
            let full_page = i64::try_from(page.len()).unwrap_or(i64::MAX) >= crate::MAX_LISTING;
            for entry in page {
                let ListEntry::Object(segment) = entry else {
                    continue;
                };
                // One segment without its MD5 yet leaves the whole without an ETag.
                etags = etags.zip(segment.etag.as_ref()).map(|(mut md5, etag)| {
                    md5.update(etag.as_bytes());
                    md5
                });
                size += segment.size;
                if with_pieces {
                    pieces.extend(self.pieces(who, &segment, 1, &mut resolved).await?);
                }
                query.marker = Some(segment.name);
            }
            if !full_page {
                break;
            }
        }
        Ok(Content {
            size,
            etag: etags.map(|md5| hex::encode(md5.finalize())),
            pieces: with_pieces.then_some(pieces),
        })
    }

    /// The pieces holding the bytes of `object`: its own hashmap, or for a static manifest
    /// that does not line up with blocks, the pieces of its segments.
    fn pieces<'a>(
        &'a self,
        who: Accessor<'a>,
        object: &'a ObjectInfo,
        depth: usize,
        resolved: &'a mut Resolved,
    ) -> BoxFuture<'a, Result<Vec<Piece>, StorageError>> {
        Box::pin(async move {
            if has_own_blocks(object) {
                if object.size == 0 {
                    return Ok(Vec::new());
                }
                resolved.add(1, 0)?;
                return Ok(vec![Piece {
                    source: Source::Blocks {
                        hashes: Arc::new(self.hashmap(object).await?),
                        size: object.size,
                    },
                    first: 0,
                    len: object.size,
                }]);
            }
            let Some(segments) = manifest::stored_segments(object)? else {
                return Err(StorageError::NotFound {
                    what: "block of the object",
                });
            };
            if depth >= MAX_DEPTH {
                return Err(StorageError::Conflict {
                    reason: "static large objects nest too deeply",
                });
            }
            let mut out = Vec::new();
            for item in &segments {
                if let Some(data) = item.inline_data() {
                    let data = Bytes::from(data?);
                    resolved.add(1, data.len() as u64)?;
                    out.push(Piece {
                        first: 0,
                        len: data.len() as u64,
                        source: Source::Inline(data),
                    });
                    continue;
                }
                let Some(segment) = item.segment() else {
                    continue;
                };
                let found = self
                    .current_segment(who, &object.project_id, segment)
                    .await?;
                let inner = self.pieces(who, &found, depth + 1, resolved).await?;
                let (first, len) = segment.window();
                out.extend(window(&inner, first, len));
            }
            Ok(out)
        })
    }

    /// The current version of a segment a static manifest names, which must still be the
    /// one the manifest was written with.
    async fn current_segment(
        &self,
        who: Accessor<'_>,
        project_id: &str,
        segment: &StoredSegment,
    ) -> Result<ObjectInfo, StorageError> {
        let missing = StorageError::Conflict {
            reason: "a segment of the static large object is missing or has changed",
        };
        let Some((container, name)) = manifest::split_path(&segment.name) else {
            return Err(missing);
        };
        let found = match self
            .object(who, project_id, container, name, VersionSelector::Current)
            .await
        {
            Ok(found) => found,
            Err(StorageError::NotFound { .. }) => return Err(missing),
            Err(other) => return Err(other),
        };
        if found.etag.as_deref() != Some(segment.hash.as_str()) || found.size != segment.bytes {
            return Err(missing);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: u64) -> Piece {
        Piece {
            source: Source::Blocks {
                hashes: Arc::new(Vec::new()),
                size: len,
            },
            first: 0,
            len,
        }
    }

    fn spans(pieces: &[Piece]) -> Vec<(u64, u64)> {
        pieces.iter().map(|p| (p.first, p.len)).collect()
    }

    #[test]
    fn windows_cut_across_pieces() {
        let pieces = [piece(10), piece(5), piece(20)];
        assert_eq!(spans(&window(&pieces, 0, 35)), [(0, 10), (0, 5), (0, 20)]);
        assert_eq!(spans(&window(&pieces, 8, 10)), [(8, 2), (0, 5), (0, 3)]);
        assert_eq!(spans(&window(&pieces, 10, 5)), [(0, 5)]);
        assert_eq!(spans(&window(&pieces, 34, 100)), [(19, 1)]);
        assert!(window(&pieces, 35, 1).is_empty());
        assert!(window(&pieces, 3, 0).is_empty());
    }
}
