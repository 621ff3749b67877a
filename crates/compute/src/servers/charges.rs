//! What a server costs in quota, by Synnefo's Cyclades resources: a VM, its total vCPUs,
//! RAM and disk for as long as it exists, and its "active" vCPUs and RAM for as long as
//! it is meant to run (released when it is stopped, charged again when it is started).

use nefos_quota::{Provision, QuotaError, Shortfall};

use crate::ComputeError;

const MIB: i64 = 1 << 20;
const GIB: i64 = 1 << 30;

/// The sizes a server is charged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub vcpus: i64,
    pub ram_mib: i64,
    pub disk_gib: i64,
}

/// What exists: one VM and its total resources, times `count`, signed by `sign`.
pub fn existence(project: &str, user: &str, size: Size, count: i64, sign: i64) -> Vec<Provision> {
    let p = |resource: &str, quantity: i64| {
        Provision::new(project, user, resource, sign * count * quantity)
    };
    vec![
        p("cyclades.vm", 1),
        p("cyclades.total_cpu", size.vcpus),
        p("cyclades.total_ram", size.ram_mib * MIB),
        p("cyclades.disk", size.disk_gib * GIB),
    ]
}

/// What runs: the active vCPUs and RAM, times `count`, signed by `sign`.
pub fn activity(project: &str, user: &str, size: Size, count: i64, sign: i64) -> Vec<Provision> {
    vec![
        Provision::new(project, user, "cyclades.cpu", sign * count * size.vcpus),
        Provision::new(
            project,
            user,
            "cyclades.ram",
            sign * count * size.ram_mib * MIB,
        ),
    ]
}

/// The resources whose amount grows from `from` to `to`, by how much it grows: those of
/// existence, and of activity too when `active`. A resize charges them at once and a
/// revert gives them back; what shrinks is given back only when the resize is confirmed,
/// so until then the larger of the two is charged.
pub fn growth(project: &str, user: &str, from: Size, to: Size, active: bool) -> Vec<Provision> {
    let mut amounts = vec![
        ("cyclades.total_cpu", from.vcpus, to.vcpus),
        ("cyclades.total_ram", from.ram_mib * MIB, to.ram_mib * MIB),
        ("cyclades.disk", from.disk_gib * GIB, to.disk_gib * GIB),
    ];
    if active {
        amounts.push(("cyclades.cpu", from.vcpus, to.vcpus));
        amounts.push(("cyclades.ram", from.ram_mib * MIB, to.ram_mib * MIB));
    }
    amounts
        .into_iter()
        .filter(|(_, from, to)| to > from)
        .map(|(resource, from, to)| Provision::new(project, user, resource, to - from))
        .collect()
}

/// `provisions` given back.
pub fn released(provisions: Vec<Provision>) -> Vec<Provision> {
    provisions
        .into_iter()
        .map(|p| Provision {
            quantity: -p.quantity,
            ..p
        })
        .collect()
}

/// Nova's 403 for a quota that does not fit, in Nova's words and units (instances, cores,
/// RAM in MiB; disk in GiB).
pub fn refusal(error: QuotaError) -> ComputeError {
    match error {
        QuotaError::Exceeded(shortfall) => ComputeError::OverQuota {
            message: message(&shortfall),
        },
        other => ComputeError::Quota(other),
    }
}

fn message(shortfall: &Shortfall) -> String {
    let (name, unit) = match shortfall.resource.as_str() {
        "cyclades.vm" => ("instances", 1),
        "cyclades.cpu" | "cyclades.total_cpu" => ("cores", 1),
        "cyclades.ram" | "cyclades.total_ram" => ("ram", MIB),
        "cyclades.disk" => ("disk", GIB),
        other => (other, 1),
    };
    format!(
        "Quota exceeded for {name}: Requested {}, but already used {} of {} {name}",
        shortfall.requested / unit,
        shortfall.usage / unit,
        shortfall.limit / unit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_novas() {
        let error = QuotaError::Exceeded(Box::new(Shortfall {
            project_id: "p".to_owned(),
            member_id: Some("u".to_owned()),
            resource: "cyclades.vm".to_owned(),
            limit: 3,
            usage: 3,
            requested: 1,
        }));
        assert_eq!(
            refusal(error).to_string(),
            "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
        );
    }
}
