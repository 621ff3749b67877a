//! The disk formats nefos runs, by the names Glance gives them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How an image's bytes are laid out on the disk a guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum DiskFormat {
    /// The bytes are the disk.
    Raw,
    /// QEMU's copy-on-write format, as most cloud images ship.
    Qcow2,
}

impl DiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Glance's other `disk_format` values: real formats that nefos does not run, told apart
/// from names that are no format at all so that the message can say which it is.
const OTHER_GLANCE_FORMATS: [&str; 9] = [
    "vmdk", "vdi", "vhd", "vhdx", "iso", "ami", "ari", "aki", "ploop",
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DiskFormatError {
    #[error(
        "disk format {name:?} is not supported: nefos runs raw and qcow2 images \
         (`qemu-img convert -O qcow2` converts most others)"
    )]
    Unsupported { name: String },
    #[error("{name:?} is not a disk format; nefos runs raw and qcow2 images")]
    Unknown { name: String },
}

impl FromStr for DiskFormat {
    type Err = DiskFormatError;

    /// The names are Glance's, lower case only, as Glance accepts them.
    fn from_str(name: &str) -> Result<DiskFormat, DiskFormatError> {
        match name {
            "raw" => Ok(DiskFormat::Raw),
            "qcow2" => Ok(DiskFormat::Qcow2),
            other if OTHER_GLANCE_FORMATS.contains(&other) => Err(DiskFormatError::Unsupported {
                name: other.to_owned(),
            }),
            other => Err(DiskFormatError::Unknown {
                name: other.to_owned(),
            }),
        }
    }
}

impl TryFrom<String> for DiskFormat {
    type Error = DiskFormatError;

    fn try_from(name: String) -> Result<DiskFormat, DiskFormatError> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused_with_the_reason() {
        for format in [DiskFormat::Raw, DiskFormat::Qcow2] {
            assert_eq!(format.as_str().parse::<DiskFormat>(), Ok(format));
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{format}\""));
            assert_eq!(serde_json::from_str::<DiskFormat>(&json).unwrap(), format);
        }
        assert_eq!(
            "vmdk".parse::<DiskFormat>(),
            Err(DiskFormatError::Unsupported {
                name: "vmdk".to_owned()
            })
        );
        assert!(matches!(
            "QCOW2".parse::<DiskFormat>(),
            Err(DiskFormatError::Unknown { .. })
        ));
        let error = serde_json::from_str::<DiskFormat>("\"vhdx\"").unwrap_err();
        assert!(error.to_string().contains("not supported"), "{error}");
    }
}
