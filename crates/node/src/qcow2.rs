//! qcow2 overlays written directly: a root disk is a qcow2 file whose backing file is the
//! cached image, so creating one costs a few KiB of metadata whatever the image's size
//! (docs/design.md §5). Writing the header ourselves keeps that O(1) path free of a
//! `qemu-img` process start, which would dominate it.
//!
//! The base may be raw or qcow2: the cache keeps images as they were uploaded (see
//! `image_cache`), and a qcow2 overlay may stand on a qcow2 base as well as on a raw one.
//! The header names the base's format as well as its path, so that tools that open the
//! overlay by itself (`qemu-img info`, `check`, `convert`) read a qcow2 base as qcow2, not
//! its metadata as disk. QEMU itself never follows this name: the node gives it the base
//! as a block node of its own (see `qemu`).
//!
//! The file holds four kinds of cluster, in this order: the header (with the backing
//! file's name and format), one refcount-table cluster, one refcount block, and the L1
//! table, all zero but their refcounts. No L2 table exists yet: every guest read falls
//! through to the backing file until the guest writes.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use nefos_disk_format::DiskFormat;

const MAGIC: u32 = 0x5146_49fb;
const VERSION: u32 = 3;
const CLUSTER_BITS: u32 = 16;
const CLUSTER_SIZE: u64 = 1 << CLUSTER_BITS;
const SECTOR: u64 = 512;
/// 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u32 = 4;
const HEADER_LENGTH: u32 = 112;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_END: u32 = 0;
/// Bytes of guest disk one L2 table maps: a cluster of 8-byte entries, one per cluster.
const L2_COVERAGE: u64 = (CLUSTER_SIZE / 8) * CLUSTER_SIZE;
/// Clusters one refcount block counts (16-bit entries).
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER_SIZE * 8 / (1 << REFCOUNT_ORDER);

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("the backing file name is {len} bytes; at most {max} fit in the header")]
    BackingNameTooLong { len: usize, max: usize },
    #[error("a {size}-byte disk needs more metadata than one refcount block counts")]
    TooLarge { size: u64 },
    #[error("cannot write the overlay")]
    Io(#[source] io::Error),
}

/// Writes a new qcow2 file at `path` (which must not exist) of virtual size `size`, rounded
/// up to whole 512-byte sectors (QEMU would otherwise cut the tail off), backed by the file
/// `backing` of format `backing_format` (stored as given: pass an absolute path). The file
/// is synced before this returns.
pub fn create_overlay(
    path: &Path,
    backing: &Path,
    backing_format: DiskFormat,
    size: u64,
) -> Result<(), OverlayError> {
    let backing = backing.as_os_str().as_encoded_bytes();
    let image = layout(size.next_multiple_of(SECTOR), backing, backing_format)?;
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(OverlayError::Io)?;
    write_layout(&mut file, &image, backing).map_err(OverlayError::Io)
}

struct Layout {
    size: u64,
    l1_entries: u64,
    l1_clusters: u64,
    header: Vec<u8>,
}

impl Layout {
    const REFCOUNT_TABLE: u64 = CLUSTER_SIZE;
    const REFCOUNT_BLOCK: u64 = 2 * CLUSTER_SIZE;
    const L1_TABLE: u64 = 3 * CLUSTER_SIZE;

    fn clusters(&self) -> u64 {
        3 + self.l1_clusters
    }
}

fn layout(size: u64, backing: &[u8], backing_format: DiskFormat) -> Result<Layout, OverlayError> {
    let l1_entries = size.div_ceil(L2_COVERAGE).max(1);
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER_SIZE);
    if 3 + l1_clusters > REFCOUNTS_PER_BLOCK {
        return Err(OverlayError::TooLarge { size });
    }
    let mut header = Vec::with_capacity(512);
    let put32 = |h: &mut Vec<u8>, v: u32| h.extend_from_slice(&v.to_be_bytes());
    let put64 = |h: &mut Vec<u8>, v: u64| h.extend_from_slice(&v.to_be_bytes());
    // Header extensions: the backing format, then the end marker; the backing file name
    // follows them.
    let format = backing_format.as_str().as_bytes();
    let format_len = u32::try_from(format.len()).unwrap_or(u32::MAX);
    let format_padded = format.len().next_multiple_of(8);
    let extensions_len = 8 + format_padded + 8;
    let backing_offset = HEADER_LENGTH as usize + extensions_len;
    let max = usize::try_from(CLUSTER_SIZE).unwrap_or(usize::MAX) - backing_offset;
    if backing.len() > max.min(1023) {
        return Err(OverlayError::BackingNameTooLong {
            len: backing.len(),
            max: max.min(1023),
        });
    }
    let backing_len =
        u32::try_from(backing.len()).map_err(|_| OverlayError::BackingNameTooLong {
            len: backing.len(),
            max: 1023,
        })?;
    let l1_size = u32::try_from(l1_entries).map_err(|_| OverlayError::TooLarge { size })?;

    put32(&mut header, MAGIC);
    put32(&mut header, VERSION);
    put64(&mut header, backing_offset as u64);
    put32(&mut header, backing_len);
    put32(&mut header, CLUSTER_BITS);
    put64(&mut header, size);
    put32(&mut header, 0); // no encryption
    put32(&mut header, l1_size);
    put64(&mut header, Layout::L1_TABLE);
    put64(&mut header, Layout::REFCOUNT_TABLE);
    put32(&mut header, 1); // refcount table clusters
    put32(&mut header, 0); // snapshots
    put64(&mut header, 0); // snapshots offset
    put64(&mut header, 0); // incompatible features
    put64(&mut header, 0); // compatible features
    put64(&mut header, 0); // autoclear features
    put32(&mut header, REFCOUNT_ORDER);
    put32(&mut header, HEADER_LENGTH);
    header.push(0); // zlib compression type
    header.resize(HEADER_LENGTH as usize, 0);

    put32(&mut header, EXT_BACKING_FORMAT);
    put32(&mut header, format_len);
    header.extend_from_slice(format);
    header.resize(header.len() + format_padded - format.len(), 0);
    put32(&mut header, EXT_END);
    put32(&mut header, 0);
    debug_assert_eq!(header.len(), backing_offset);
    Ok(Layout {
        size,
        l1_entries,
        l1_clusters,
        header,
    })
}

fn write_layout(file: &mut File, image: &Layout, backing: &[u8]) -> io::Result<()> {
    let mut header = image.header.clone();
    header.extend_from_slice(backing);
    file.write_all(&header)?;
    // The refcount table points at the one refcount block …
    file.write_all_at(
        &Layout::REFCOUNT_BLOCK.to_be_bytes(),
        Layout::REFCOUNT_TABLE,
    )?;
    // … which counts every cluster of metadata once.
    let refcounts: Vec<u8> = (0..image.clusters())
        .flat_map(|_| 1u16.to_be_bytes())
        .collect();
    file.write_all_at(&refcounts, Layout::REFCOUNT_BLOCK)?;
    // The L1 table stays zero (unallocated) but must exist to the end of its clusters.
    debug_assert!(image.l1_entries * 8 <= image.l1_clusters * CLUSTER_SIZE);
    debug_assert!(image.size > 0 || image.l1_entries == 1);
    file.set_len(image.clusters() * CLUSTER_SIZE)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_where_qcow2_puts_them() {
        let image = layout(10 << 30, b"/base.raw", DiskFormat::Raw).unwrap();
        let h = &image.header;
        assert_eq!(&h[0..4], b"QFI\xfb");
        assert_eq!(u32::from_be_bytes(h[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_be_bytes(h[24..32].try_into().unwrap()), 10 << 30);
        // 10 GiB at 512 MiB per L2 table.
        assert_eq!(u32::from_be_bytes(h[36..40].try_into().unwrap()), 20);
        assert_eq!(u32::from_be_bytes(h[100..104].try_into().unwrap()), 112);
        assert_eq!(image.l1_clusters, 1);
    }

    #[test]
    fn the_header_names_the_backing_format() {
        for (format, padded) in [
            (DiskFormat::Raw, &b"raw\0\0\0\0\0"[..]),
            (DiskFormat::Qcow2, &b"qcow2\0\0\0"[..]),
        ] {
            let image = layout(1 << 30, b"/base", format).unwrap();
            let h = &image.header;
            // The backing format extension, then the end marker, then the name.
            assert_eq!(&h[112..116], &0xe279_2acau32.to_be_bytes());
            let len = u32::from_be_bytes(h[116..120].try_into().unwrap());
            assert_eq!(len as usize, format.as_str().len());
            assert_eq!(&h[120..128], padded);
            assert_eq!(&h[128..136], &[0; 8]);
            assert_eq!(u64::from_be_bytes(h[8..16].try_into().unwrap()), 136);
        }
    }

    #[test]
    fn names_too_long_for_the_header_are_refused() {
        let name = vec![b'a'; 2000];
        assert!(matches!(
            layout(1 << 30, &name, DiskFormat::Raw),
            Err(OverlayError::BackingNameTooLong { .. })
        ));
    }
}
