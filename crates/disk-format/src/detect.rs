//! What an image's first bytes say it is.
//!
//! A raw image is any bytes, so "raw" can only mean "none of the formats we recognise".
//! The formats recognised are those whose signature sits in the first sector: a raw image
//! whose content is one of them was either mislabelled or crafted so that a tool which
//! probes the format (as `qemu-img` and older QEMU did) would open it as that format, with
//! its backing files or extents, instead of as the plain bytes that were declared.

use std::fmt;

/// Bytes of an image's start that [`detect`] looks at.
pub const HEAD_LEN: usize = 512;

/// The format an image's content shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentFormat {
    /// No signature we know: plain bytes.
    Raw,
    /// `QFI\xfb` (qcow2, and the old qcow version 1, which shares the magic).
    Qcow2,
    /// QEMU Enhanced Disk, `QED\0`: it can name a backing file too.
    Qed,
    /// VMware: a sparse extent (`KDMV`) or a text descriptor naming extent files.
    Vmdk,
    /// Hyper-V's `vhdxfile`.
    Vhdx,
    /// Virtual PC's dynamic VHD, whose footer copy `conectix` leads the file.
    Vhd,
    /// VirtualBox, signature 0xbeda107f at offset 64.
    Vdi,
    /// A LUKS encrypted volume.
    Luks,
}

impl ContentFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentFormat::Raw => "raw",
            ContentFormat::Qcow2 => "qcow2",
            ContentFormat::Qed => "qed",
            ContentFormat::Vmdk => "vmdk",
            ContentFormat::Vhdx => "vhdx",
            ContentFormat::Vhd => "vhd",
            ContentFormat::Vdi => "vdi",
            ContentFormat::Luks => "luks",
        }
    }
}

impl fmt::Display for ContentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentFormat::Raw => f.write_str("raw (it starts with no qcow2 header)"),
            other => f.write_str(other.as_str()),
        }
    }
}

pub(crate) const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";
/// VDI's signature, little-endian at byte 64.
const VDI_SIGNATURE: (usize, [u8; 4]) = (64, 0xbeda_107f_u32.to_le_bytes());

/// The format an image's first bytes show; pass its first [`HEAD_LEN`] bytes, or all of
/// it if it is shorter.
pub fn detect(head: &[u8]) -> ContentFormat {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(QCOW2_MAGIC) {
        ContentFormat::Qcow2
    } else if starts(b"QED\0") {
        ContentFormat::Qed
    } else if starts(b"KDMV") || starts(b"# Disk DescriptorFile") {
        ContentFormat::Vmdk
    } else if starts(b"vhdxfile") {
        ContentFormat::Vhdx
    } else if starts(b"conectix") {
        ContentFormat::Vhd
    } else if starts(b"LUKS\xba\xbe") {
        ContentFormat::Luks
    } else if head.get(VDI_SIGNATURE.0..VDI_SIGNATURE.0 + 4) == Some(&VDI_SIGNATURE.1[..]) {
        ContentFormat::Vdi
    } else {
        ContentFormat::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_recognised_where_they_sit() {
        let with = |at: usize, magic: &[u8]| {
            let mut head = vec![0u8; HEAD_LEN];
            head[at..at + magic.len()].copy_from_slice(magic);
            detect(&head)
        };
        assert_eq!(with(0, b"QFI\xfb\0\0\0\x03"), ContentFormat::Qcow2);
        assert_eq!(with(0, b"QED\0"), ContentFormat::Qed);
        assert_eq!(with(0, b"KDMV"), ContentFormat::Vmdk);
        assert_eq!(
            with(0, b"# Disk DescriptorFile\nversion=1\n"),
            ContentFormat::Vmdk
        );
        assert_eq!(with(0, b"vhdxfile"), ContentFormat::Vhdx);
        assert_eq!(with(0, b"conectix"), ContentFormat::Vhd);
        assert_eq!(with(0, b"LUKS\xba\xbe\0\x01"), ContentFormat::Luks);
        assert_eq!(with(64, &[0x7f, 0x10, 0xda, 0xbe]), ContentFormat::Vdi);
        // Elsewhere, or cut short, they are just bytes.
        assert_eq!(with(1, b"QFI\xfb"), ContentFormat::Raw);
        assert_eq!(with(0, &[0x7f, 0x10, 0xda, 0xbe]), ContentFormat::Raw);
        assert_eq!(detect(b"QFI"), ContentFormat::Raw);
        assert_eq!(detect(&[0x7f; 66]), ContentFormat::Raw);
        assert_eq!(detect(b""), ContentFormat::Raw);
    }
}
