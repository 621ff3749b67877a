//! The inspector against images made by QEMU's own `qemu-img`: what it accepts, what it
//! refuses and why, and what it reads of a hostile header.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use nefos_disk_format::{
    BootProblem, ContentFormat, DiskFormat, InspectError, Inspection, MAX_METADATA_READ,
    MAX_VIRTUAL_SIZE, OutOfBounds, ReadAt, Structure, inspect,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Runs `qemu-img` with `args`, failing the test with its output unless it succeeds.
fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run qemu-img: {e}"));
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn qemu_io(image: &Path, command: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command])
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic incompressible bytes.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = (seed << 1) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The image in memory, counting the bytes the inspector reads.
struct Counted {
    bytes: Vec<u8>,
    read: AtomicU64,
}

impl ReadAt for Counted {
    type Error = OutOfBounds;

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, OutOfBounds> {
        self.read.fetch_add(len as u64, Ordering::SeqCst);
        self.bytes.as_slice().read_at(offset, len).await
    }
}

/// Runs a future that never waits (every read is from memory).
fn now<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("an in-memory inspection waited"),
    }
}

/// Inspects `bytes` as an image of `len` bytes (normally their length); returns the result
/// and how many bytes were read.
fn inspect_as(
    bytes: Vec<u8>,
    len: u64,
    declared: DiskFormat,
) -> (Result<Inspection, InspectError>, u64) {
    let source = Counted {
        bytes,
        read: AtomicU64::new(0),
    };
    let result = now(inspect(&source, len, declared));
    (result, source.read.load(Ordering::SeqCst))
}

fn check(bytes: &[u8], declared: DiskFormat) -> Result<Inspection, InspectError> {
    let (result, read) = inspect_as(bytes.to_vec(), bytes.len() as u64, declared);
    assert!(read <= MAX_METADATA_READ);
    result
}

fn check_file(path: &Path, declared: DiskFormat) -> Result<Inspection, InspectError> {
    check(&std::fs::read(path).unwrap(), declared)
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 4 MiB raw disk of random bytes, and the same as qcow2 (version 3, 64 KiB clusters),
/// which has L2 tables and data clusters.
fn raw_and_qcow2(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = path(dir, "disk.raw");
    std::fs::write(&raw, random_bytes(4 * MIB as usize, 1)).unwrap();
    let qcow2 = path(dir, "disk.qcow2");
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&qcow2)]);
    (raw, qcow2)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// `image` with `value` written big-endian at `at`.
fn patched(image: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut out = image.to_vec();
    out[at..at + value.len()].copy_from_slice(value);
    out
}

#[test]
fn raw_images_are_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, _) = raw_and_qcow2(dir.path());
    let inspection = check_file(&raw, DiskFormat::Raw).unwrap();
    assert_eq!(
        inspection,
        Inspection {
            format: DiskFormat::Raw,
            virtual_size: 4 * MIB,
            boot_problems: Vec::new(),
            qcow2: None,
        }
    );
    assert!(inspection.may_boot());
    // Only the first sector is read to know that it is raw.
    let (_, read) = inspect_as(std::fs::read(&raw).unwrap(), 4 * MIB, DiskFormat::Raw);
    assert_eq!(read, 512);
}

#[test]
fn raw_images_smaller_than_a_sector_are_accepted_and_flagged() {
    for len in [0, 1, 511] {
        let inspection = check(&vec![0x5a; len], DiskFormat::Raw).unwrap();
        assert_eq!(inspection.virtual_size, len as u64);
        assert_eq!(
            inspection.boot_problems,
            [BootProblem::SmallerThanOneSector {
                virtual_size: len as u64
            }]
        );
        assert!(!inspection.may_boot());
        assert!(
            inspection.boot_problems[0]
                .to_string()
                .contains("smaller than one 512-byte sector")
        );
    }
    assert!(check(&[0x5a; 512], DiskFormat::Raw).unwrap().may_boot());
}

#[test]
fn qcow2_version_2_and_3_images_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (compat, version) in [("0.10", 2), ("1.1", 3)] {
        let image = path(dir.path(), &format!("empty-{compat}.qcow2"));
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            &format!("compat={compat}"),
            s(&image),
            "10G",
        ]);
        let inspection = check_file(&image, DiskFormat::Qcow2).unwrap();
        assert_eq!(inspection.format, DiskFormat::Qcow2);
        assert_eq!(inspection.virtual_size, 10 * GIB);
        assert!(inspection.may_boot());
        let details = inspection.qcow2.unwrap();
        assert_eq!(details.version, version);
        assert_eq!(details.cluster_size, 65536);
        assert_eq!(details.snapshots, 0);

        // With data: L2 tables and data clusters, and a snapshot of them.
        qemu_io(&image, "write -P 0xab 0 1M");
        qemu_io(&image, &format!("write -P 0xcd {} 64k", 9 * GIB));
        qemu_img(&["snapshot", "-c", "first", s(&image)]);
        qemu_io(&image, "write -P 0xef 0 64k");
        let inspection = check_file(&image, DiskFormat::Qcow2).unwrap();
        assert_eq!(inspection.virtual_size, 10 * GIB);
        assert_eq!(inspection.qcow2.unwrap().snapshots, 1);
    }

    let (_, converted) = raw_and_qcow2(dir.path());
    let inspection = check_file(&converted, DiskFormat::Qcow2).unwrap();
    assert_eq!(inspection.virtual_size, 4 * MIB);
}

#[test]
fn qcow2_variants_qemu_makes_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, _) = raw_and_qcow2(dir.path());
    // Compressed clusters, as `virt-sparsify`/`qemu-img convert -c` ship cloud images.
    let compressed = path(dir.path(), "compressed.qcow2");
    qemu_img(&[
        "convert",
        "-c",
        "-f",
        "raw",
        "-O",
        "qcow2",
        s(&raw),
        s(&compressed),
    ]);
    assert_eq!(
        check_file(&compressed, DiskFormat::Qcow2)
            .unwrap()
            .virtual_size,
        4 * MIB
    );
    for options in [
        "compression_type=zstd",
        "extended_l2=on,cluster_size=128k",
        "cluster_size=512",
        "cluster_size=2M",
        "refcount_bits=64",
        "lazy_refcounts=on",
    ] {
        let image = path(dir.path(), "variant.qcow2");
        let _ = std::fs::remove_file(&image);
        qemu_img(&[
            "convert",
            "-c",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            options,
            s(&raw),
            s(&image),
        ]);
        let inspection =
            check_file(&image, DiskFormat::Qcow2).unwrap_or_else(|e| panic!("{options}: {e}"));
        assert_eq!(inspection.virtual_size, 4 * MIB, "{options}");
    }
}

#[test]
fn a_backing_file_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let image = path(dir.path(), "backed.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "/etc/passwd",
        "-F",
        "raw",
        s(&image),
    ]);
    let error = check_file(&image, DiskFormat::Qcow2).unwrap_err();
    assert!(
        matches!(&error, InspectError::BackingFile { name: Some(name) } if name == "/etc/passwd"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the image names a backing file \"/etc/passwd\", which would let the image read files \
         of the host"
    );
    assert!(error.is_refusal());

    // A qcow2 backing file, and a name that is not where the header says.
    let base = path(dir.path(), "base.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&base), "1G"]);
    let layered = path(dir.path(), "layered.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        s(&base),
        "-F",
        "qcow2",
        s(&layered),
    ]);
    let bytes = std::fs::read(&layered).unwrap();
    assert!(matches!(
        check(&bytes, DiskFormat::Qcow2),
        Err(InspectError::BackingFile { name: Some(name) }) if name == s(&base)
    ));
    let moved = patched(&bytes, 8, &(1u64 << 40).to_be_bytes());
    assert!(matches!(
        check(&moved, DiskFormat::Qcow2),
        Err(InspectError::BackingFile { name: None })
    ));
    // A size without an offset counts as a backing file too.
    let (_, plain) = raw_and_qcow2(dir.path());
    let sized = patched(&std::fs::read(&plain).unwrap(), 16, &11u32.to_be_bytes());
    assert!(matches!(
        check(&sized, DiskFormat::Qcow2),
        Err(InspectError::BackingFile { name: None })
    ));
}

#[test]
fn an_external_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = path(dir.path(), "data.raw");
    for (i, options) in [
        format!("data_file={}", s(&data)),
        format!("data_file={},data_file_raw=on", s(&data)),
    ]
    .iter()
    .enumerate()
    {
        let image = path(dir.path(), &format!("external-{i}.qcow2"));
        qemu_img(&["create", "-f", "qcow2", "-o", options, s(&image), "64M"]);
        let error = check_file(&image, DiskFormat::Qcow2).unwrap_err();
        assert!(
            matches!(&error, InspectError::DataFile { name: Some(name) } if name == s(&data)),
            "{options}: {error:?}"
        );
        assert!(error.to_string().contains("external data file"), "{error}");
    }
    // The feature bit alone (the name would come from whoever opens it).
    let (_, plain) = raw_and_qcow2(dir.path());
    let flagged = patched(&std::fs::read(&plain).unwrap(), 72, &4u64.to_be_bytes());
    assert!(matches!(
        check(&flagged, DiskFormat::Qcow2),
        Err(InspectError::DataFile { name: None })
    ));
}

#[test]
fn encryption_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = path(dir.path(), "secret.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "--object",
        "secret,id=sec0,data=not-a-real-secret",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
        s(&image),
        "64M",
    ]);
    assert!(matches!(
        check_file(&image, DiskFormat::Qcow2),
        Err(InspectError::Encrypted { method: 2 })
    ));
    // The encryption header extension without the method.
    let bytes = patched(&std::fs::read(&image).unwrap(), 32, &0u32.to_be_bytes());
    assert!(matches!(
        check(&bytes, DiskFormat::Qcow2),
        Err(InspectError::StrayEncryptionHeader)
    ));
}

#[test]
fn a_format_other_than_the_declared_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, qcow2) = raw_and_qcow2(dir.path());
    let error = check_file(&qcow2, DiskFormat::Raw).unwrap_err();
    assert!(matches!(
        error,
        InspectError::Mismatch {
            declared: DiskFormat::Raw,
            found: ContentFormat::Qcow2
        }
    ));
    assert_eq!(error.to_string(), "the image is qcow2 but was declared raw");
    let error = check_file(&raw, DiskFormat::Qcow2).unwrap_err();
    assert!(matches!(
        error,
        InspectError::Mismatch {
            declared: DiskFormat::Qcow2,
            found: ContentFormat::Raw
        }
    ));
    assert!(error.to_string().contains("was declared qcow2"), "{error}");
    // A qcow2 backed by a host file, declared raw, is refused as qcow2 before anything
    // else: the classic attack.
    let backed = path(dir.path(), "backed.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "/etc/shadow",
        "-F",
        "raw",
        s(&backed),
    ]);
    assert!(matches!(
        check_file(&backed, DiskFormat::Raw),
        Err(InspectError::Mismatch {
            found: ContentFormat::Qcow2,
            ..
        })
    ));
    // Too short to hold a qcow2 header.
    assert!(matches!(
        check(b"QF", DiskFormat::Qcow2),
        Err(InspectError::Mismatch { .. })
    ));

    // Other formats QEMU writes, declared raw or qcow2.
    for (format, options, found) in [
        ("vmdk", "", ContentFormat::Vmdk),
        ("vmdk", "subformat=monolithicFlat", ContentFormat::Vmdk),
        ("vhdx", "", ContentFormat::Vhdx),
        ("vpc", "subformat=dynamic", ContentFormat::Vhd),
        ("vdi", "", ContentFormat::Vdi),
        ("qed", "", ContentFormat::Qed),
    ] {
        let image = path(dir.path(), &format!("other.{format}"));
        let _ = std::fs::remove_file(&image);
        let mut args = vec!["create", "-f", format];
        if !options.is_empty() {
            args.extend(["-o", options]);
        }
        args.extend([s(&image), "16M"]);
        qemu_img(&args);
        for declared in [DiskFormat::Raw, DiskFormat::Qcow2] {
            let error = check_file(&image, declared).unwrap_err();
            assert!(
                matches!(error, InspectError::Mismatch { found: f, .. } if f == found),
                "{format} {options} as {declared}: {error:?}"
            );
        }
    }
    let luks = path(dir.path(), "volume.luks");
    qemu_img(&[
        "create",
        "-f",
        "luks",
        "--object",
        "secret,id=sec0,data=not-a-real-secret",
        "-o",
        "key-secret=sec0,iter-time=10",
        s(&luks),
        "16M",
    ]);
    assert!(matches!(
        check_file(&luks, DiskFormat::Raw),
        Err(InspectError::Mismatch {
            found: ContentFormat::Luks,
            ..
        })
    ));
}

#[test]
fn truncated_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, qcow2) = raw_and_qcow2(dir.path());
    let bytes = std::fs::read(&qcow2).unwrap();
    assert!(check(&bytes, DiskFormat::Qcow2).is_ok());
    // Every cut that loses metadata is refused: shorter than the header, than its
    // cluster, than the L1 table, the refcount table or an L2 table. (Cuts that lose only
    // data clusters cannot be told from holes without reading every L2 table.)
    let l1 = be_u64(&bytes, 40) as usize;
    let refcounts = be_u64(&bytes, 48) as usize;
    let l2 = (be_u64(&bytes, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    for cut in [50, 100, 4096, 65535, l1 + 4, refcounts + 100, l2 + 65535] {
        let error = check(&bytes[..cut], DiskFormat::Qcow2).unwrap_err();
        assert!(
            matches!(error, InspectError::Truncated { .. }),
            "cut at {cut}: {error:?}"
        );
        assert!(error.to_string().contains("truncated"), "{error}");
    }
    // Where the image says the file ends is what counts: bytes held back by the source
    // are a failed read, not a refusal.
    let (result, _) = inspect_as(
        bytes[..70000].to_vec(),
        bytes.len() as u64,
        DiskFormat::Qcow2,
    );
    let error = result.unwrap_err();
    assert!(matches!(error, InspectError::Read { .. }), "{error:?}");
    assert!(!error.is_refusal());
}

/// Whether an error is the one a case expects.
type Expected = fn(&InspectError) -> bool;

#[test]
fn corrupt_header_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, qcow2) = raw_and_qcow2(dir.path());
    let good = std::fs::read(&qcow2).unwrap();
    let l1 = be_u64(&good, 40);
    let l1_at = l1 as usize;
    let refcounts = be_u64(&good, 48);
    let len = good.len() as u64;
    let u32be = |v: u32| v.to_be_bytes().to_vec();
    let u64be = |v: u64| v.to_be_bytes().to_vec();
    let cases: Vec<(&str, usize, Vec<u8>, Expected)> = vec![
        ("version 1", 4, u32be(1), |e| {
            matches!(e, InspectError::Qcow2Version { version: 1 })
        }),
        ("version 4", 4, u32be(4), |e| {
            matches!(e, InspectError::Qcow2Version { version: 4 })
        }),
        ("cluster_bits 8", 20, u32be(8), |e| {
            matches!(e, InspectError::ClusterBits { bits: 8, .. })
        }),
        ("cluster_bits 22", 20, u32be(22), |e| {
            matches!(e, InspectError::ClusterBits { bits: 22, .. })
        }),
        ("header_length 96", 100, u32be(96), |e| {
            matches!(e, InspectError::HeaderLength { length: 96 })
        }),
        ("header_length 109", 100, u32be(109), |e| {
            matches!(e, InspectError::HeaderLength { .. })
        }),
        ("header_length past the cluster", 100, u32be(1 << 17), |e| {
            matches!(e, InspectError::HeaderLength { .. })
        }),
        ("refcount_order 7", 96, u32be(7), |e| {
            matches!(e, InspectError::RefcountOrder { order: 7 })
        }),
        ("AES", 32, u32be(1), |e| {
            matches!(e, InspectError::Encrypted { method: 1 })
        }),
        ("unknown feature", 72, u64be(1 << 5), |e| {
            matches!(e, InspectError::UnknownFeatures { bits: 32 })
        }),
        ("marked corrupt", 72, u64be(2), |e| {
            matches!(e, InspectError::MarkedCorrupt)
        }),
        ("size 0", 24, u64be(0), |e| {
            matches!(e, InspectError::EmptyDisk)
        }),
        ("size 32 TiB", 24, u64be(32 << 40), |e| {
            matches!(e, InspectError::TooLarge { .. })
        }),
        ("size past the L1 table", 24, u64be(GIB), |e| {
            matches!(
                e,
                InspectError::L1TooSmall {
                    entries: 1,
                    needed: 2,
                    ..
                }
            )
        }),
        ("l1_size 0", 36, u32be(0), |e| {
            matches!(e, InspectError::L1TooSmall { entries: 0, .. })
        }),
        ("L1 misaligned", 40, u64be(l1 + 8), |e| {
            matches!(
                e,
                InspectError::Misaligned {
                    structure: Structure::L1Table,
                    ..
                }
            )
        }),
        ("L1 in the header", 40, u64be(0), |e| {
            matches!(
                e,
                InspectError::OverlapsHeader {
                    structure: Structure::L1Table
                }
            )
        }),
        (
            "L1 past the end",
            40,
            u64be(len.next_multiple_of(65536)),
            |e| {
                matches!(
                    e,
                    InspectError::Truncated {
                        structure: Structure::L1Table,
                        ..
                    }
                )
            },
        ),
        ("L1 offset overflowing", 40, u64be(u64::MAX - 65535), |e| {
            matches!(e, InspectError::Truncated { .. })
        }),
        ("no refcount table", 56, u32be(0), |e| {
            matches!(e, InspectError::NoRefcountTable)
        }),
        (
            "refcount table misaligned",
            48,
            u64be(refcounts + 512),
            |e| {
                matches!(
                    e,
                    InspectError::Misaligned {
                        structure: Structure::RefcountTable,
                        ..
                    }
                )
            },
        ),
        ("refcount table past the end", 56, u32be(1000), |e| {
            matches!(
                e,
                InspectError::Truncated {
                    structure: Structure::RefcountTable,
                    ..
                }
            )
        }),
        (
            "refcount block past the end",
            refcounts as usize,
            u64be(len.next_multiple_of(65536)),
            |e| {
                matches!(
                    e,
                    InspectError::Truncated {
                        structure: Structure::RefcountBlock { index: 0 },
                        ..
                    }
                )
            },
        ),
        (
            "L2 past the end",
            l1_at,
            u64be((1 << 63) | len.next_multiple_of(65536)),
            |e| {
                matches!(
                    e,
                    InspectError::Truncated {
                        structure: Structure::L2Table { l1_index: 0 },
                        ..
                    }
                )
            },
        ),
        ("L2 misaligned", l1_at, u64be((1 << 63) | 0x1_0200), |e| {
            matches!(
                e,
                InspectError::Misaligned {
                    structure: Structure::L2Table { l1_index: 0 },
                    ..
                }
            )
        }),
        (
            "L1 entry reserved bits",
            l1_at,
            u64be((1 << 63) | (1 << 60) | 0x3_0000),
            |e| matches!(e, InspectError::ReservedBits { .. }),
        ),
        (
            "snapshot table past the end",
            60,
            [u32be(1), u64be(len.next_multiple_of(65536))].concat(),
            |e| {
                matches!(
                    e,
                    InspectError::Truncated {
                        structure: Structure::SnapshotTable,
                        ..
                    }
                )
            },
        ),
        (
            "snapshot table misaligned",
            60,
            [u32be(1), u64be(65536 + 8)].concat(),
            |e| {
                matches!(
                    e,
                    InspectError::Misaligned {
                        structure: Structure::SnapshotTable,
                        ..
                    }
                )
            },
        ),
        ("too many snapshots", 60, u32be(1 << 20), |e| {
            matches!(e, InspectError::TooManySnapshots { .. })
        }),
        ("extension past the cluster", 112 + 4, u32be(65536), |e| {
            matches!(e, InspectError::BadExtension { .. })
        }),
    ];
    for (name, at, value, expected) in cases {
        let image = patched(&good, at, &value);
        let error = check(&image, DiskFormat::Qcow2).unwrap_err();
        assert!(expected(&error), "{name}: {error:?}");
        assert!(error.is_refusal(), "{name}");
    }
}

#[test]
fn a_snapshot_whose_l1_table_is_missing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, qcow2) = raw_and_qcow2(dir.path());
    qemu_img(&["snapshot", "-c", "before", s(&qcow2)]);
    let good = std::fs::read(&qcow2).unwrap();
    assert_eq!(
        check(&good, DiskFormat::Qcow2)
            .unwrap()
            .qcow2
            .unwrap()
            .snapshots,
        1
    );
    let table = be_u64(&good, 64) as usize;
    let beyond = (good.len() as u64).next_multiple_of(65536);
    let bad = patched(&good, table, &beyond.to_be_bytes());
    assert!(matches!(
        check(&bad, DiskFormat::Qcow2),
        Err(InspectError::Truncated {
            structure: Structure::SnapshotL1Table { snapshot: 0 },
            ..
        })
    ));
    let bad = patched(&good, table + 36, &4096u32.to_be_bytes());
    assert!(matches!(
        check(&bad, DiskFormat::Qcow2),
        Err(InspectError::SnapshotExtraData {
            snapshot: 0,
            len: 4096,
            ..
        })
    ));
}

#[test]
fn a_hostile_header_cannot_make_the_inspector_read_more_than_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let image = path(dir.path(), "small.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&image), "1G"]);
    let good = std::fs::read(&image).unwrap();
    // An L1 table of 2^28 entries (2 GiB), 2 MiB clusters, 64 Ki snapshots, in an object
    // that claims to be 1 PiB long: the source holds only the real bytes, so any read
    // past them fails the test as a read error instead of a refusal.
    let claimed = 1 << 50;
    for (name, at, value) in [
        ("huge L1", 36, (1u32 << 28).to_be_bytes().to_vec()),
        (
            "huge refcount table",
            56,
            (1u32 << 20).to_be_bytes().to_vec(),
        ),
    ] {
        let hostile = patched(&good, at, &value);
        let (result, read) = inspect_as(hostile, claimed, DiskFormat::Qcow2);
        let error = result.unwrap_err();
        assert!(
            matches!(error, InspectError::MetadataTooLarge { needed, max, .. } if needed > max && max == MAX_METADATA_READ),
            "{name}: {error:?}"
        );
        assert!(read <= MAX_METADATA_READ, "{name}: read {read}");
    }
    // A virtual size over the limit is refused before any table is read.
    let hostile = patched(&good, 24, &(MAX_VIRTUAL_SIZE + 1).to_be_bytes());
    let (result, read) = inspect_as(hostile, claimed, DiskFormat::Qcow2);
    assert!(matches!(result, Err(InspectError::TooLarge { .. })));
    assert!(read <= 512 + 65536, "read {read}");
}
