//! The CPU models guests may be given: named baselines, each a QEMU `-cpu` line and the
//! CPU features it needs of a node. A VM keeps its model wherever it runs, so it can move
//! between hosts of different generations and vendors (Intel and AMD) that offer the
//! features; the scheduler places it only where they are. The levels are the x86-64
//! psABI's microarchitecture levels, built on QEMU's vendor-neutral `qemu64`.

/// A named CPU baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuModel {
    pub name: &'static str,
    /// QEMU's `-cpu` argument.
    pub qemu: &'static str,
    /// QEMU's names of the features the model needs of the node's accelerator.
    pub features: &'static [&'static str],
}

const V2_FEATURES: &[&str] = &["cx16", "lahf-lm", "popcnt", "sse4.1", "sse4.2", "ssse3"];
const V3_FEATURES: &[&str] = &[
    "cx16", "lahf-lm", "popcnt", "sse4.1", "sse4.2", "ssse3", "avx", "avx2", "bmi1", "bmi2",
    "f16c", "fma", "abm", "movbe", "xsave",
];
const V4_FEATURES: &[&str] = &[
    "cx16", "lahf-lm", "popcnt", "sse4.1", "sse4.2", "ssse3", "avx", "avx2", "bmi1", "bmi2",
    "f16c", "fma", "abm", "movbe", "xsave", "avx512f", "avx512bw", "avx512cd", "avx512dq",
    "avx512vl",
];

/// Every model nefos knows, oldest first.
pub const CPU_MODELS: &[CpuModel] = &[
    CpuModel {
        name: "x86-64-v1",
        qemu: "qemu64",
        features: &["lm", "sse2"],
    },
    CpuModel {
        name: "x86-64-v2",
        qemu: "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+lahf-lm",
        features: V2_FEATURES,
    },
    CpuModel {
        name: "x86-64-v3",
        qemu: "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+lahf-lm,+avx,+avx2,+bmi1,+bmi2,\
               +f16c,+fma,+abm,+movbe,+xsave",
        features: V3_FEATURES,
    },
    CpuModel {
        name: "x86-64-v4",
        qemu: "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16,+lahf-lm,+avx,+avx2,+bmi1,+bmi2,\
               +f16c,+fma,+abm,+movbe,+xsave,+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl",
        features: V4_FEATURES,
    },
];

/// The model guests get when nothing names one.
pub const DEFAULT_CPU_MODEL: &str = "x86-64-v2";

/// The model of this name.
pub fn cpu_model(name: &str) -> Option<&'static CpuModel> {
    CPU_MODELS.iter().find(|model| model.name == name)
}

impl CpuModel {
    /// Whether a node whose accelerator offers `features` runs this model.
    pub fn runs_on(&self, features: &[String]) -> bool {
        self.features
            .iter()
            .all(|needed| features.iter().any(|offered| offered == needed))
    }

    /// The models' names, for messages.
    pub fn names() -> String {
        CPU_MODELS
            .iter()
            .map(|model| model.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_needs_what_the_one_below_needs() {
        for pair in CPU_MODELS.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            if lower.name == "x86-64-v1" {
                continue;
            }
            for feature in lower.features {
                assert!(
                    higher.features.contains(feature),
                    "{} lacks {feature}",
                    higher.name
                );
            }
            assert!(higher.qemu.starts_with(lower.qemu), "{}", higher.name);
        }
    }

    #[test]
    fn a_model_runs_where_its_features_are() {
        let v2 = cpu_model("x86-64-v2").unwrap();
        let offered: Vec<String> = V2_FEATURES.iter().map(|f| (*f).to_owned()).collect();
        assert!(v2.runs_on(&offered));
        assert!(!cpu_model("x86-64-v3").unwrap().runs_on(&offered));
        assert!(!v2.runs_on(&offered[1..]));
    }
}
