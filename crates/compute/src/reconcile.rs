//! The reconciler: what each node runs compared with what the database says, repaired by
//! named rules (Synnefo's `snf-manage reconcile-servers`). It leaves alone every server a
//! saga is working on: sagas change state on what nodes report, the reconciler catches
//! what no saga will (a guest that powered itself off, a VM left on a node, a task whose
//! saga is gone).
//!
//! - `orphan_vm`: a node runs a VM of a deleted server: destroyed.
//! - `unknown_vm`: a node runs a VM the database has never had (made outside the cloud,
//!   or a database restored from an old backup): reported, and destroyed only when the
//!   operator asks (`--destroy-unknown`), as Synnefo leaves it to the operator.
//! - `stale_state`: a server's state is not what its node reports: the report wins (a
//!   server whose VM stopped shows SHUTOFF and gives back its active resources).
//! - `missing_vm`: a launched server's node has no VM for it: ERROR, with the reason.
//! - `stuck_task`: a server has a task but no saga: the task ends, with the state the
//!   node reports (or ERROR for a build whose VM never came).
//! - `unsynced_flavor`: a settled server's VM has other vCPUs, RAM or disk on its node
//!   than the server's flavor (a resize whose record was lost: a database restored from a
//!   backup): as Synnefo does, the server takes the flavor of those sizes, and its quota
//!   follows what the VM really holds (forced: it holds it already); with no flavor of
//!   those sizes it is reported and left alone.
//!
//! Nodes that are down are skipped: their servers show UNKNOWN until they are back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nefos_db::compute::{self as q, FlavorColumns, ServerRow, ServerScope, StateChange};
use nefos_db::time::now_micros;
use nefos_db::{Database, DbError};
use nefos_node_api::{VmState, VmStatus};
use nefos_quota::Quotas;
use serde::Serialize;

use crate::servers::charges::{self, Size};
use crate::servers::state::{self, power, vm};
use crate::{ComputeError, NodeRpc, Services};

/// A task older than this with no saga is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// How a pass runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    /// Report what would be repaired, and repair nothing.
    pub dry_run: bool,
    /// Destroy VMs the database never had (`unknown_vm`).
    pub destroy_unknown: bool,
}

/// One repair, made or (in a dry run) to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub rule: &'static str,
    pub server: String,
    pub node: String,
    pub detail: String,
}

/// What a pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub nodes_checked: Vec<String>,
    /// Nodes down, or that did not answer.
    pub nodes_skipped: Vec<String>,
    pub repairs: Vec<Repair>,
    pub dry_run: bool,
}

/// The reconciler, over the database, the nodes and the quota engine.
#[derive(Debug, Clone)]
pub struct Reconciler {
    db: Database,
    nodes: NodeRpc,
    quotas: Quotas,
    /// Where there is one, each node visited is also sent its networks again.
    services: Option<Arc<Services>>,
}

impl Reconciler {
    pub fn new(db: Database, nodes: NodeRpc, quotas: Quotas) -> Reconciler {
        Reconciler {
            db,
            nodes,
            quotas,
            services: None,
        }
    }

    /// A reconciler that also sends each node it visits its networks.
    pub(crate) fn with_services(services: Arc<Services>) -> Reconciler {
        Reconciler {
            db: services.db.clone(),
            nodes: services.nodes.clone(),
            quotas: services.quotas.clone(),
            services: Some(services),
        }
    }

    /// Reconciles every node that is up.
    pub async fn reconcile_all(&self, mode: Mode) -> Result<ReconcileReport, ComputeError> {
        let mut report = ReconcileReport {
            dry_run: mode.dry_run,
            ..ReconcileReport::default()
        };
        let now = now_micros();
        for node in self.nodes.registry().list().await? {
            if node.is_up(now) {
                self.reconcile_into(&node.info.id, mode, &mut report)
                    .await?;
            } else {
                report.nodes_skipped.push(node.info.id);
            }
        }
        Ok(report)
    }

    /// Reconciles one node (as it registers again after a restart).
    pub async fn reconcile_node(
        &self,
        node: &str,
        mode: Mode,
    ) -> Result<ReconcileReport, ComputeError> {
        let mut report = ReconcileReport {
            dry_run: mode.dry_run,
            ..ReconcileReport::default()
        };
        self.reconcile_into(node, mode, &mut report).await?;
        Ok(report)
    }

    async fn reconcile_into(
        &self,
        node: &str,
        mode: Mode,
        report: &mut ReconcileReport,
    ) -> Result<(), ComputeError> {
        let dry_run = mode.dry_run;
        if let Some(services) = self.services.as_ref().filter(|_| !dry_run)
            && let Err(error) = services.push_networks(node).await
        {
            tracing::warn!(node, error = %crate::servers::sagas::chain(&error), "reconcile: cannot send the node its networks");
        }
        let client = self.nodes.client(node).await?;
        // Sagas first, then the node, then the rows: a saga that ends meanwhile leaves its
        // server in a state the node has reported, which a later pass compares again.
        let busy: BTreeSet<String> = nefos_db::saga::saga_subjects(self.db.pool())
            .await?
            .into_iter()
            .collect();
        // A row changed after this moment may be newer than the node's report: left for
        // the next pass.
        let listed_at = now_micros();
        let vms = match client.list_vms().await {
            Ok(vms) => vms,
            Err(error) => {
                tracing::warn!(node, error = %crate::servers::sagas::chain(&error), "reconcile: the node did not answer");
                report.nodes_skipped.push(node.to_owned());
                return Ok(());
            }
        };
        let scope = ServerScope {
            project: None,
            changed_since: Some(0),
            node: Some(node),
        };
        let rows: BTreeMap<String, ServerRow> = q::list_servers(self.db.pool(), &scope)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect();
        let now = now_micros();
        let mut repair = |rule, server: &str, detail: String| {
            tracing::warn!(rule, server, node, %detail, dry_run, "reconcile");
            report.repairs.push(Repair {
                rule,
                server: server.to_owned(),
                node: node.to_owned(),
                detail,
            });
        };
        let mut seen = BTreeSet::new();
        for status in &vms {
            seen.insert(status.id.clone());
            if busy.contains(&status.id) {
                continue;
            }
            let Some(row) = rows.get(&status.id) else {
                // Placed elsewhere by the database: a copy a move left behind (the
                // source's after the switch, or a destination's that never ran) once no
                // task of the server is under way, or the new copy of a move under way
                // (its saga covers it; the server has its task).
                if let Some(server) = q::get_server(self.db.pool(), &status.id).await? {
                    // A server left in ERROR by a move whose switch failed may have its
                    // newest copy here: an operator's to decide.
                    let settled = server.task_state.is_none()
                        && server.updated_at < listed_at
                        && server.vm_state != vm::ERROR;
                    if settled && server.node_id.as_deref() != Some(node) {
                        repair(
                            "moved_copy",
                            &status.id,
                            format!(
                                "destroying a copy a move left; the server is on {}",
                                server.node_id.as_deref().unwrap_or("no node")
                            ),
                        );
                        if !dry_run {
                            self.destroy(&client, node, status).await?;
                        }
                    }
                    continue;
                }
                let destroy = mode.destroy_unknown && !dry_run;
                repair(
                    "unknown_vm",
                    &status.id,
                    if mode.destroy_unknown {
                        format!(
                            "destroying a VM the database never had (generation {})",
                            status.generation
                        )
                    } else {
                        "a VM the database never had; left alone (--destroy-unknown destroys it)"
                            .to_owned()
                    },
                );
                if destroy {
                    self.destroy(&client, node, status).await?;
                }
                continue;
            };
            if row.updated_at >= listed_at {
                continue;
            }
            if row.deleted_at.is_some() {
                repair(
                    "orphan_vm",
                    &status.id,
                    format!(
                        "destroying the VM of a deleted server (generation {})",
                        status.generation
                    ),
                );
                if !dry_run {
                    self.destroy(&client, node, status).await?;
                }
                continue;
            }
            if let Some(stuck) = row.task_state.as_deref() {
                if now.saturating_sub(row.updated_at) < micros(STUCK_AFTER) {
                    continue;
                }
                repair(
                    "stuck_task",
                    &row.id,
                    format!("ending task {stuck}; the node reports {:?}", status.state),
                );
                if !dry_run {
                    self.take_report(row, status, true).await?;
                }
                continue;
            }
            let (reported_vm, reported_power) = state::reported(status.state);
            let settled = matches!(
                row.vm_state.as_str(),
                vm::ACTIVE | vm::STOPPED | vm::PAUSED | vm::SUSPENDED
            );
            if settled && (row.vm_state != reported_vm || row.power_state != reported_power) {
                repair(
                    "stale_state",
                    &row.id,
                    format!("{} → {reported_vm} as the node reports", row.vm_state),
                );
                if !dry_run {
                    self.take_report(row, status, false).await?;
                }
            }
            if let Some(size) = status
                .size
                .filter(|_| settled && row.resized_from.is_none())
                && node_sizes(size) != (row.vcpus, row.ram_mib, row.disk_gib)
            {
                let flavor = self.flavor_of_sizes(node_sizes(size)).await?;
                let (vcpus, ram, disk) = node_sizes(size);
                let detail = match &flavor {
                    Some(flavor) => format!(
                        "flavor {} ({} vCPUs, {} MiB, {} GiB) → {} ({vcpus}, {ram}, {disk}) as \
                         the node's VM has",
                        row.flavor_id, row.vcpus, row.ram_mib, row.disk_gib, flavor.flavor_id
                    ),
                    None => format!(
                        "the node's VM has {vcpus} vCPUs, {ram} MiB, {disk} GiB, flavor {} \
                         has {}, {}, {}; no flavor has the node's sizes: left alone",
                        row.flavor_id, row.vcpus, row.ram_mib, row.disk_gib
                    ),
                };
                repair("unsynced_flavor", &row.id, detail);
                if let Some(flavor) = flavor.filter(|_| !dry_run) {
                    self.take_flavor(row, &flavor).await?;
                }
            }
        }
        for row in rows.values() {
            if row.deleted_at.is_some()
                || seen.contains(&row.id)
                || busy.contains(&row.id)
                || row.updated_at >= listed_at
            {
                continue;
            }
            let launched = row.launched_at.is_some();
            let stuck = row.task_state.is_some()
                && now.saturating_sub(row.updated_at) >= micros(STUCK_AFTER);
            if (launched && row.vm_state != vm::ERROR && row.task_state.is_none()) || stuck {
                let rule = if stuck { "stuck_task" } else { "missing_vm" };
                repair(
                    rule,
                    &row.id,
                    "the node has no VM for the server: ERROR".to_owned(),
                );
                if !dry_run {
                    self.mark_missing(row, node).await?;
                }
            }
        }
        report.nodes_checked.push(node.to_owned());
        Ok(())
    }

    /// Whether the database has (or had) a server of this id.
    async fn destroy(
        &self,
        client: &nefos_node_api::NodeClient,
        node: &str,
        status: &VmStatus,
    ) -> Result<(), ComputeError> {
        client
            .destroy_vm(&status.id, status.generation)
            .await
            .map_err(|source| ComputeError::Rpc {
                node: node.to_owned(),
                source,
            })
    }

    /// Gives a server the state its node reports, ending its task (`end_task`) or only
    /// if it has none, and settles its active resources with it.
    async fn take_report(
        &self,
        row: &ServerRow,
        status: &VmStatus,
        end_task: bool,
    ) -> Result<(), ComputeError> {
        let (vm_state, power_state) = state::reported(status.state);
        let forwards = serde_json::to_string(&status.forwards).unwrap_or_default();
        let now = now_micros();
        let change = StateChange {
            vm_state: Some(vm_state),
            power_state: Some(power_state),
            task_state: Some(None),
            forwards: Some(&forwards),
            launched_at: row.launched_at.is_none().then_some(now),
            ..StateChange::default()
        };
        let mut tx = self.db.begin().await?;
        // Only from the state this pass read: anything newer is a saga's.
        let expect = Some(row.task_state.as_deref())
            .filter(|_| end_task)
            .or(Some(None));
        if !q::change_state(&mut *tx, &row.id, expect, &change, now).await? {
            return Ok(());
        }
        let size = Size {
            vcpus: row.vcpus,
            ram_mib: row.ram_mib,
            disk_gib: row.disk_gib,
        };
        let running = status.state != VmState::Stopped;
        if q::set_active_charged(&mut *tx, &row.id, running, now).await? {
            let sign = if running { 1 } else { -1 };
            let provisions = charges::activity(&row.project_id, &row.user_id, size, 1, sign);
            // A VM found running is charged even over the limit: it runs.
            self.quotas
                .charge_in(&mut tx, &provisions)
                .await
                .or_else(|error| match error {
                    nefos_quota::QuotaError::Exceeded(_) if running => Ok(()),
                    other => Err(other),
                })
                .map_err(ComputeError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a reconciled state"))?;
        Ok(())
    }

    /// The flavor (the first by id) of these sizes, as a server's columns.
    async fn flavor_of_sizes(
        &self,
        (vcpus, ram_mib, disk_gib): (i64, i64, i64),
    ) -> Result<Option<FlavorColumns>, ComputeError> {
        let flavors = q::list_flavors(self.db.pool(), None, true).await?;
        let Some(flavor) = flavors
            .into_iter()
            .find(|f| f.vcpus == vcpus && f.ram_mib == ram_mib && f.disk_gib == disk_gib)
        else {
            return Ok(None);
        };
        let extra_specs = q::extra_specs(self.db.pool(), &flavor.id).await?;
        Ok(Some(FlavorColumns {
            flavor_id: flavor.id,
            flavor_name: flavor.name,
            vcpus: flavor.vcpus,
            ram_mib: flavor.ram_mib,
            disk_gib: flavor.disk_gib,
            ephemeral_gib: flavor.ephemeral_gib,
            swap_mib: flavor.swap_mib,
            flavor_extra_specs: serde_json::to_string(&extra_specs)
                .unwrap_or_else(|_| "{}".to_owned()),
        }))
    }

    /// Gives a server the flavor its VM has, and moves its quota by the difference.
    async fn take_flavor(
        &self,
        row: &ServerRow,
        flavor: &FlavorColumns,
    ) -> Result<(), ComputeError> {
        let from = Size {
            vcpus: row.vcpus,
            ram_mib: row.ram_mib,
            disk_gib: row.disk_gib,
        };
        let to = Size {
            vcpus: flavor.vcpus,
            ram_mib: flavor.ram_mib,
            disk_gib: flavor.disk_gib,
        };
        let mut tx = self.db.begin().await?;
        let sizes = (row.vcpus, row.ram_mib, row.disk_gib);
        if !q::sync_flavor(&mut *tx, &row.id, sizes, flavor, now_micros()).await? {
            // Changed since this pass read it: the next pass compares again.
            return Ok(());
        }
        let active = row.active_charged;
        let (project, user) = (row.project_id.as_str(), row.user_id.as_str());
        let mut provisions = charges::growth(project, user, from, to, active);
        provisions.extend(charges::released(charges::growth(
            project, user, to, from, active,
        )));
        self.quotas
            .force_in(&mut tx, &provisions)
            .await
            .map_err(ComputeError::Quota)?;
        tx.commit()
            .await
            .map_err(DbError::query("commit a server's synced flavor"))?;
        Ok(())
    }

    /// Puts a server whose VM is missing from its node in ERROR.
    async fn mark_missing(&self, row: &ServerRow, node: &str) -> Result<(), ComputeError> {
        let now = now_micros();
        let fault = crate::Fault {
            code: 500,
            message: format!("The server's VM is missing from its node {node}."),
            created: now,
        };
        let fault = serde_json::to_string(&fault).unwrap_or_default();
        let change = StateChange {
            vm_state: Some(vm::ERROR),
            power_state: Some(power::NOSTATE),
            task_state: Some(None),
            fault: Some(Some(&fault)),
            ..StateChange::default()
        };
        let expect = Some(row.task_state.as_deref());
        let mut tx = self.db.begin().await?;
        if q::change_state(&mut *tx, &row.id, expect, &change, now).await?
            && q::set_active_charged(&mut *tx, &row.id, false, now).await?
        {
            let size = Size {
                vcpus: row.vcpus,
                ram_mib: row.ram_mib,
                disk_gib: row.disk_gib,
            };
            let provisions = charges::activity(&row.project_id, &row.user_id, size, 1, -1);
            self.quotas
                .charge_in(&mut tx, &provisions)
                .await
                .map_err(ComputeError::Quota)?;
        }
        tx.commit()
            .await
            .map_err(DbError::query("commit a missing VM"))?;
        Ok(())
    }
}

/// A node's VM sizes as a server row has them: vCPUs, MiB, GiB.
fn node_sizes(size: nefos_node_api::VmSize) -> (i64, i64, i64) {
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (
        i64::from(size.vcpus),
        int(size.ram_mib),
        int(size.disk_bytes >> 30),
    )
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}
