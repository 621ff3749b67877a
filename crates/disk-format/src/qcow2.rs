//! qcow2 inspection, after QEMU's specification (docs/interop/qcow2.txt).
//!
//! What makes a qcow2 image dangerous to a host is what it can name outside itself — a
//! backing file, an external data file — so those are refused whatever else the image
//! holds. Encryption is refused because nefos has no keys to give. The rest checks that
//! the metadata QEMU follows while the guest runs (the L1 table and the L2 tables it points
//! at, the refcount table and its blocks, the snapshot table) lies within the file, so that
//! a truncated or damaged upload is refused with a reason instead of failing in a guest.
//! Every L2 table is read too (within the metadata bound: 64 MiB of L2 tables map 512 GiB
//! of data in 64 KiB clusters), and every data cluster it points at must start within the
//! file: an upload cut short loses its last clusters, not its tables, and would otherwise
//! pass. Data clusters themselves are never read.

use crate::error::{InspectError, Structure};
use crate::read::{ReadAt, Reader};
use crate::{BootProblem, DiskFormat, Inspection, MAX_VIRTUAL_SIZE, Qcow2Details, SECTOR};

/// Clusters of 512 bytes to 2 MiB: the spec's minimum and QEMU's maximum.
const CLUSTER_BITS: std::ops::RangeInclusive<u32> = 9..=21;
/// Extended L2 entries split clusters into 32 subclusters, which needs 16 KiB clusters.
const MIN_CLUSTER_BITS_EXTENDED_L2: u32 = 14;
const V2_HEADER_LENGTH: u32 = 72;
const V3_MIN_HEADER_LENGTH: u32 = 104;
const MAX_REFCOUNT_ORDER: u32 = 6;

const INCOMPATIBLE_DIRTY: u64 = 1 << 0;
const INCOMPATIBLE_CORRUPT: u64 = 1 << 1;
const INCOMPATIBLE_DATA_FILE: u64 = 1 << 2;
const INCOMPATIBLE_COMPRESSION_TYPE: u64 = 1 << 3;
const INCOMPATIBLE_EXTENDED_L2: u64 = 1 << 4;
/// The incompatible features nefos knows. Dirty only says refcounts may be stale, which a
/// base that is only ever read never consults; a compression type other than zlib (zstd)
/// and extended L2 entries change how clusters are read, which QEMU handles.
const KNOWN_INCOMPATIBLE: u64 = INCOMPATIBLE_DIRTY
    | INCOMPATIBLE_CORRUPT
    | INCOMPATIBLE_DATA_FILE
    | INCOMPATIBLE_COMPRESSION_TYPE
    | INCOMPATIBLE_EXTENDED_L2;

const EXTENSION_END: u32 = 0;
const EXTENSION_ENCRYPTION_HEADER: u32 = 0x0537_be77;
const EXTENSION_DATA_FILE: u32 = 0x4441_5441;

/// Longest backing file name the spec allows; a longer one is not read.
const MAX_BACKING_NAME: u32 = 1023;

/// An L1 entry: bits 9–55 the L2 table's offset, bit 63 whether its refcount is one; the
/// other bits are reserved and must be zero.
const L1_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1_COPIED: u64 = 1 << 63;
/// A refcount table entry: bits 9–63 a refcount block's offset, bits 0–8 reserved.
const REFCOUNT_RESERVED: u64 = 0x1ff;
const TABLE_ENTRY_BYTES: u64 = 8;

/// QEMU's own limits on snapshots, which no image QEMU made exceeds.
pub const MAX_SNAPSHOTS: u32 = 65_536;
const MAX_SNAPSHOT_EXTRA_DATA: u32 = 1024;
/// The fixed part of a snapshot table entry.
const SNAPSHOT_ENTRY_FIXED: u64 = 40;
/// How much of the snapshot table is read at once.
const SNAPSHOT_WINDOW: u64 = 256 << 10;

/// The header fields inspection uses.
#[derive(Debug)]
struct Header {
    version: u32,
    backing_file_offset: u64,
    backing_file_size: u32,
    cluster_bits: u32,
    size: u64,
    crypt_method: u32,
    l1_size: u32,
    l1_table_offset: u64,
    refcount_table_offset: u64,
    refcount_table_clusters: u32,
    nb_snapshots: u32,
    snapshots_offset: u64,
    incompatible_features: u64,
    header_length: u32,
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0; 4];
    if let Some(slice) = bytes.get(at..at + 4) {
        field.copy_from_slice(slice);
    }
    u32::from_be_bytes(field)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0; 8];
    if let Some(slice) = bytes.get(at..at + 8) {
        field.copy_from_slice(slice);
    }
    u64::from_be_bytes(field)
}

fn be_u16(bytes: &[u8], at: usize) -> u16 {
    let mut field = [0; 2];
    if let Some(slice) = bytes.get(at..at + 2) {
        field.copy_from_slice(slice);
    }
    u16::from_be_bytes(field)
}

impl Header {
    /// The header from the image's first bytes (`head`, which starts with the magic), with
    /// the fields it cannot go on without checked: version, cluster size, header length.
    fn parse(head: &[u8], file_len: u64) -> Result<Header, InspectError> {
        let truncated = |len: u32| InspectError::Truncated {
            structure: Structure::Header,
            offset: 0,
            len: u64::from(len),
            file_len,
        };
        if head.len() < 8 {
            return Err(truncated(V2_HEADER_LENGTH));
        }
        let version = be_u32(head, 4);
        let fixed_len = match version {
            2 => V2_HEADER_LENGTH,
            3 => V3_MIN_HEADER_LENGTH,
            _ => return Err(InspectError::Qcow2Version { version }),
        };
        if head.len() < fixed_len as usize {
            return Err(truncated(fixed_len));
        }
        let cluster_bits = be_u32(head, 20);
        if !CLUSTER_BITS.contains(&cluster_bits) {
            return Err(InspectError::ClusterBits {
                bits: cluster_bits,
                min: *CLUSTER_BITS.start(),
                max: *CLUSTER_BITS.end(),
            });
        }
        // Fields past byte 72 exist only in version 3; version 2's bytes there are
        // already header extensions.
        let (incompatible_features, refcount_order, header_length) = if version == 3 {
            (be_u64(head, 72), be_u32(head, 96), be_u32(head, 100))
        } else {
            (0, 4, V2_HEADER_LENGTH)
        };
        let header_length_ok = header_length >= V3_MIN_HEADER_LENGTH
            && header_length.is_multiple_of(8)
            && u64::from(header_length) <= 1 << cluster_bits;
        if version == 3 && !header_length_ok {
            return Err(InspectError::HeaderLength {
                length: header_length,
            });
        }
        if refcount_order > MAX_REFCOUNT_ORDER {
            return Err(InspectError::RefcountOrder {
                order: refcount_order,
            });
        }
        Ok(Header {
            version,
            backing_file_offset: be_u64(head, 8),
            backing_file_size: be_u32(head, 16),
            cluster_bits,
            size: be_u64(head, 24),
            crypt_method: be_u32(head, 32),
            l1_size: be_u32(head, 36),
            l1_table_offset: be_u64(head, 40),
            refcount_table_offset: be_u64(head, 48),
            refcount_table_clusters: be_u32(head, 56),
            nb_snapshots: be_u32(head, 60),
            snapshots_offset: be_u64(head, 64),
            incompatible_features,
            header_length,
        })
    }

    fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The backing file's name, if it lies in the header cluster as the spec wants.
    fn backing_name(&self, header_cluster: &[u8]) -> Option<String> {
        if self.backing_file_offset == 0 || self.backing_file_size > MAX_BACKING_NAME {
            return None;
        }
        let start = usize::try_from(self.backing_file_offset).ok()?;
        let end = start.checked_add(usize::try_from(self.backing_file_size).ok()?)?;
        let name = header_cluster.get(start..end)?;
        Some(String::from_utf8_lossy(name).into_owned())
    }
}

/// What the header extensions say that matters here.
#[derive(Debug, Default)]
struct Extensions {
    data_file: Option<String>,
    encryption_header: bool,
}

impl Extensions {
    /// Walks the extensions from the end of the header to the end marker or the end of the
    /// header cluster, each within that cluster.
    fn parse(header_cluster: &[u8], header_length: u32) -> Result<Extensions, InspectError> {
        let mut found = Extensions::default();
        let mut at = header_length as usize;
        while at + 8 <= header_cluster.len() {
            let kind = be_u32(header_cluster, at);
            if kind == EXTENSION_END {
                break;
            }
            let bad = || InspectError::BadExtension {
                kind,
                offset: at as u64,
            };
            let len = usize::try_from(be_u32(header_cluster, at + 4)).map_err(|_| bad())?;
            let data_start = at + 8;
            let data = data_start
                .checked_add(len)
                .and_then(|end| header_cluster.get(data_start..end))
                .ok_or_else(bad)?;
            match kind {
                EXTENSION_DATA_FILE => {
                    found.data_file = Some(String::from_utf8_lossy(data).into_owned());
                }
                EXTENSION_ENCRYPTION_HEADER => found.encryption_header = true,
                // The backing format, feature names, bitmaps and extensions unknown to us
                // name nothing outside the image.
                _ => {}
            }
            at = data_start + len.next_multiple_of(8);
        }
        Ok(found)
    }
}

/// Inspects a qcow2 image whose first bytes, `head`, carry the qcow2 magic.
pub(crate) async fn inspect<R: ReadAt + ?Sized>(
    reader: &mut Reader<'_, R>,
    head: &[u8],
) -> Result<Inspection, InspectError> {
    let header = Header::parse(head, reader.file_len)?;
    let cluster_size = header.cluster_size();
    let header_cluster = reader.read(Structure::Header, 0, cluster_size).await?;
    let extensions = Extensions::parse(&header_cluster, header.header_length)?;

    // First what would reach outside the image. The spec leaves the name's size undefined
    // when the offset is 0, but no tool writes one there: either is taken as a backing
    // file, so that no reader can be led to look for one.
    if header.backing_file_offset != 0 || header.backing_file_size != 0 {
        return Err(InspectError::BackingFile {
            name: header.backing_name(&header_cluster),
        });
    }
    if header.incompatible_features & INCOMPATIBLE_DATA_FILE != 0 || extensions.data_file.is_some()
    {
        return Err(InspectError::DataFile {
            name: extensions.data_file,
        });
    }
    if header.crypt_method != 0 {
        return Err(InspectError::Encrypted {
            method: header.crypt_method,
        });
    }
    if extensions.encryption_header {
        return Err(InspectError::StrayEncryptionHeader);
    }
    let unknown = header.incompatible_features & !KNOWN_INCOMPATIBLE;
    if unknown != 0 {
        return Err(InspectError::UnknownFeatures { bits: unknown });
    }
    if header.incompatible_features & INCOMPATIBLE_CORRUPT != 0 {
        return Err(InspectError::MarkedCorrupt);
    }
    let extended_l2 = header.incompatible_features & INCOMPATIBLE_EXTENDED_L2 != 0;
    if extended_l2 && header.cluster_bits < MIN_CLUSTER_BITS_EXTENDED_L2 {
        return Err(InspectError::ClusterBits {
            bits: header.cluster_bits,
            min: MIN_CLUSTER_BITS_EXTENDED_L2,
            max: *CLUSTER_BITS.end(),
        });
    }
    if header.size == 0 {
        return Err(InspectError::EmptyDisk);
    }
    if header.size > MAX_VIRTUAL_SIZE {
        return Err(InspectError::TooLarge {
            size: header.size,
            max: MAX_VIRTUAL_SIZE,
        });
    }

    let tables = Tables {
        cluster_size,
        file_len: reader.file_len,
    };
    check_l1_table(reader, &tables, &header, extended_l2).await?;
    check_refcounts(reader, &tables, &header).await?;
    check_snapshots(reader, &tables, &header).await?;

    let mut boot_problems = Vec::new();
    if header.size < SECTOR {
        boot_problems.push(BootProblem::SmallerThanOneSector {
            virtual_size: header.size,
        });
    }
    Ok(Inspection {
        format: DiskFormat::Qcow2,
        virtual_size: header.size,
        boot_problems,
        qcow2: Some(Qcow2Details {
            version: header.version,
            cluster_size,
            snapshots: header.nb_snapshots,
        }),
    })
}

/// Where a table may lie: on a cluster boundary, past the header cluster, within the file.
struct Tables {
    cluster_size: u64,
    file_len: u64,
}

impl Tables {
    fn check(&self, structure: Structure, offset: u64, len: u64) -> Result<(), InspectError> {
        if !offset.is_multiple_of(self.cluster_size) {
            return Err(InspectError::Misaligned {
                structure,
                offset,
                cluster_size: self.cluster_size,
            });
        }
        if offset < self.cluster_size {
            return Err(InspectError::OverlapsHeader { structure });
        }
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.file_len)
        {
            return Err(InspectError::Truncated {
                structure,
                offset,
                len,
                file_len: self.file_len,
            });
        }
        Ok(())
    }
}

/// The table's 8-byte entries, numbered.
fn entries(table: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    (0u64..).zip(table.chunks_exact(8).map(|entry| be_u64(entry, 0)))
}

/// The active L1 table covers the whole disk, and every L2 table it points at is a cluster
/// within the file.
async fn check_l1_table<R: ReadAt + ?Sized>(
    reader: &mut Reader<'_, R>,
    tables: &Tables,
    header: &Header,
    extended_l2: bool,
) -> Result<(), InspectError> {
    let l2_entry_bytes = if extended_l2 { 16 } else { 8 };
    let disk_per_l1_entry = tables.cluster_size * (tables.cluster_size / l2_entry_bytes);
    let needed = header.size.div_ceil(disk_per_l1_entry);
    if u64::from(header.l1_size) < needed {
        return Err(InspectError::L1TooSmall {
            entries: header.l1_size,
            needed,
            virtual_size: header.size,
        });
    }
    let len = u64::from(header.l1_size) * TABLE_ENTRY_BYTES;
    tables.check(Structure::L1Table, header.l1_table_offset, len)?;
    let l1 = reader
        .read(Structure::L1Table, header.l1_table_offset, len)
        .await?;
    for (l1_index, entry) in entries(&l1) {
        let structure = Structure::L2Table { l1_index };
        if entry & !(L1_OFFSET_MASK | L1_COPIED) != 0 {
            return Err(InspectError::ReservedBits { structure, entry });
        }
        let offset = entry & L1_OFFSET_MASK;
        if offset != 0 {
            tables.check(structure, offset, tables.cluster_size)?;
            let l2 = reader.read(structure, offset, tables.cluster_size).await?;
            check_l2_table(&l2, l1_index, tables, header.cluster_bits, l2_entry_bytes)?;
        }
    }
    Ok(())
}

/// Bit 62 of an L2 entry: the cluster is compressed.
const L2_COMPRESSED: u64 = 1 << 62;

/// Every data cluster an L2 table points at starts within the file.
fn check_l2_table(
    table: &[u8],
    l1_index: u64,
    tables: &Tables,
    cluster_bits: u32,
    entry_bytes: u64,
) -> Result<(), InspectError> {
    let step = usize::try_from(entry_bytes).unwrap_or(8);
    for (l2_index, chunk) in (0u64..).zip(table.chunks_exact(step)) {
        let entry = be_u64(chunk, 0);
        let structure = Structure::DataCluster { l1_index, l2_index };
        if entry & L2_COMPRESSED != 0 {
            // A compressed cluster's descriptor: its host offset takes the low
            // 62 - (cluster_bits - 8) bits; the data starts there, at any byte.
            let offset_bits = 62 - (cluster_bits - 8);
            let offset = entry & ((1u64 << offset_bits) - 1);
            if offset >= tables.file_len {
                return Err(InspectError::Truncated {
                    structure,
                    offset,
                    len: 1,
                    file_len: tables.file_len,
                });
            }
            continue;
        }
        // Only the cluster's start is checked: QEMU may leave the file's last cluster
        // short of a whole one.
        let offset = entry & L1_OFFSET_MASK;
        if offset != 0 && offset >= tables.file_len {
            return Err(InspectError::Truncated {
                structure,
                offset,
                len: tables.cluster_size,
                file_len: tables.file_len,
            });
        }
    }
    Ok(())
}

/// The refcount table and every refcount block it points at lie within the file.
async fn check_refcounts<R: ReadAt + ?Sized>(
    reader: &mut Reader<'_, R>,
    tables: &Tables,
    header: &Header,
) -> Result<(), InspectError> {
    if header.refcount_table_clusters == 0 {
        return Err(InspectError::NoRefcountTable);
    }
    let len = u64::from(header.refcount_table_clusters) * tables.cluster_size;
    tables.check(Structure::RefcountTable, header.refcount_table_offset, len)?;
    let table = reader
        .read(Structure::RefcountTable, header.refcount_table_offset, len)
        .await?;
    for (index, entry) in entries(&table) {
        let structure = Structure::RefcountBlock { index };
        if entry & REFCOUNT_RESERVED != 0 {
            return Err(InspectError::ReservedBits { structure, entry });
        }
        if entry != 0 {
            tables.check(structure, entry, tables.cluster_size)?;
        }
    }
    Ok(())
}

/// The snapshot table lies within the file, and so does each snapshot's L1 table.
async fn check_snapshots<R: ReadAt + ?Sized>(
    reader: &mut Reader<'_, R>,
    tables: &Tables,
    header: &Header,
) -> Result<(), InspectError> {
    if header.nb_snapshots == 0 {
        return Ok(());
    }
    if header.nb_snapshots > MAX_SNAPSHOTS {
        return Err(InspectError::TooManySnapshots {
            count: header.nb_snapshots,
            max: MAX_SNAPSHOTS,
        });
    }
    tables.check(
        Structure::SnapshotTable,
        header.snapshots_offset,
        SNAPSHOT_ENTRY_FIXED,
    )?;
    let mut window = Window::default();
    let mut at = header.snapshots_offset;
    for snapshot in 0..header.nb_snapshots {
        let fixed = window.get(reader, at, SNAPSHOT_ENTRY_FIXED).await?;
        let l1_offset = be_u64(fixed, 0);
        let l1_size = be_u32(fixed, 8);
        let id_len = be_u16(fixed, 12);
        let name_len = be_u16(fixed, 14);
        let extra_len = be_u32(fixed, 36);
        if extra_len > MAX_SNAPSHOT_EXTRA_DATA {
            return Err(InspectError::SnapshotExtraData {
                snapshot,
                len: extra_len,
                max: MAX_SNAPSHOT_EXTRA_DATA,
            });
        }
        if l1_size > 0 {
            tables.check(
                Structure::SnapshotL1Table { snapshot },
                l1_offset,
                u64::from(l1_size) * TABLE_ENTRY_BYTES,
            )?;
        }
        let entry_len =
            SNAPSHOT_ENTRY_FIXED + u64::from(extra_len) + u64::from(id_len) + u64::from(name_len);
        // The padding to 8 bytes separates entries, but QEMU does not write it after the
        // last one, which often ends the file.
        reader.check_within(Structure::SnapshotTable, at, entry_len)?;
        at += entry_len.next_multiple_of(8);
    }
    Ok(())
}

/// A piece of the snapshot table, read a window at a time so that many small entries cost
/// few reads.
#[derive(Debug, Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl Window {
    async fn get<R: ReadAt + ?Sized>(
        &mut self,
        reader: &mut Reader<'_, R>,
        offset: u64,
        len: u64,
    ) -> Result<&[u8], InspectError> {
        let held = offset >= self.start
            && offset.saturating_add(len) <= self.start.saturating_add(self.bytes.len() as u64);
        if !held {
            let available = reader.file_len.saturating_sub(offset);
            let want = SNAPSHOT_WINDOW.min(available).max(len);
            self.bytes = reader.read(Structure::SnapshotTable, offset, want).await?;
            self.start = offset;
        }
        let from = usize::try_from(offset - self.start).unwrap_or(usize::MAX);
        let to = usize::try_from(len).map_or(usize::MAX, |len| from.saturating_add(len));
        self.bytes.get(from..to).ok_or(InspectError::Truncated {
            structure: Structure::SnapshotTable,
            offset,
            len,
            file_len: reader.file_len,
        })
    }
}
