//! `nefos admin`: operator commands that work on the database directly, like Synnefo's
//! snf-manage. They act as [`Caller::Operator`].

mod amount;
mod migrations;
mod network;
mod output;
mod projects;
mod quota;
mod reconcile;
mod resource;
mod usage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use nefos_db::time::from_micros;
use nefos_db::{DbError, PoolSettings};
use nefos_identity::{
    ADMIN_PROJECT, Caller, Identity, NewProject, NewUser, Project, ProjectFilter, Role,
    RoleAssignmentFilter, User, UserFilter, UserPatch,
};
use nefos_quota::Quotas;
use nefos_quota::projects::{LifecycleAction, ProjectQuery};

use self::output::{date, table};
use crate::bootstrap::{self, AdminOutcome};
use crate::config::Config;
use crate::up::generate_password;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Configuration file of the control plane whose database to use.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Data directory of a `nefos up` cloud (default ./nefos-data).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Database URL (overrides --config and --data).
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Creates the cloud administrator (the system project `admin`, the user `admin` and its
    /// `admin` role there) unless it exists; run again, it changes nothing and says so.
    Bootstrap(BootstrapArgs),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Projects: their members, the applications that create and change them, their
    /// life cycle.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// The resources quotas count and their default limits.
    #[command(subcommand)]
    Resource(resource::ResourceCommand),
    /// Limits and usage of users and projects; reconciliation with what exists.
    #[command(subcommand)]
    Quota(quota::QuotaCommand),
    /// Usage over time, for accounting.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Servers: moving them between nodes.
    #[command(subcommand)]
    Server(migrations::ServerCommand),
    /// The database schema.
    #[command(subcommand)]
    Db(DbCommand),
    /// The block store shared by objects, images and snapshots.
    #[command(subcommand)]
    Blocks(BlocksCommand),
    /// Compute nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Networks: address pools and the IP history.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Compares what nodes run with the database and repairs the differences by named
    /// rules (orphan_vm, unknown_vm, stale_state, missing_vm, stuck_task).
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
}

#[derive(Debug, Subcommand)]
enum ReconcileCommand {
    /// Servers on every node that is up.
    Servers {
        /// Report what would be repaired, and repair nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also destroy VMs the database never had (unknown_vm), which are otherwise only
        /// reported.
        #[arg(long)]
        destroy_unknown: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct BootstrapArgs {
    /// The administrator's password. Default: generated, printed and saved to
    /// --password-file.
    #[arg(long, env = "NEFOS_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Where a generated password is saved (mode 0600). Default: DATA_DIR/admin-password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Set the administrator's password (the one given, or a generated one) even though it
    /// exists with another; its tokens are revoked.
    #[arg(long)]
    reset_password: bool,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// The registered nodes, their capacity and when each was last heard from.
    List,
    /// Enrols a node: prints a one-time join token that the node, started with
    /// `--join-token`, exchanges for its own credential.
    Enroll {
        /// The node's id in the cloud.
        name: String,
        /// How long the join token stays valid.
        #[arg(long, default_value_t = 60)]
        valid_minutes: u64,
    },
    /// Revokes a node alone: its credential, its registration and the image blocks it was
    /// granted. Its next call to the control plane is refused.
    Revoke { name: String },
    /// Places nothing new on a node and live-migrates its running and paused servers
    /// away, a few at a time, then reports how each fared. Fails if any stays.
    Drain {
        name: String,
        /// Only stop new placements; the servers stay (Nova's service disable).
        #[arg(long)]
        keep_servers: bool,
        /// How many servers move at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
    },
    /// Removes a node from the cloud (its registration and credential). Refused while it
    /// holds servers or a move to or from it is under way: drain it first.
    Remove { name: String },
    /// Lets the scheduler place servers on a drained node again.
    Undrain { name: String },
}

#[derive(Debug, Subcommand)]
enum BlocksCommand {
    /// Deletes blocks no object version refers to and nothing touched recently. Safe while
    /// uploads run, as long as none takes longer than --older-than-hours.
    Gc {
        #[arg(long, default_value_t = 6)]
        older_than_hours: u64,
    },
    /// Re-hashes every block and reports the damaged ones (exit status 1 if any).
    Verify,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Creates a user and its personal project; prints a generated password unless given.
    Create {
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        password: Option<String>,
    },
    /// Lists users.
    List,
    /// Shows a user (by name or id) and its roles.
    Show { user: String },
    /// Sets a user's password (generated and printed unless given); revokes its tokens.
    SetPassword {
        user: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Disables a user and revokes its tokens.
    Disable { user: String },
    /// Enables a user.
    Enable { user: String },
}

#[derive(Debug, Subcommand)]
enum ProjectCommand {
    /// Creates a project.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists projects.
    List,
    /// Shows a project (by name or id) and its members.
    Show { project: String },
    /// Gives a user a role on a project.
    AddMember {
        project: String,
        user: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Removes a user's role (every role, unless --role) from a project.
    RemoveMember {
        project: String,
        user: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Applications for new projects and for changes, which an administrator approves or
    /// denies.
    #[command(subcommand)]
    Application(projects::ApplicationCommand),
    /// Suspends an active project: it grants nothing until resumed, so its members keep
    /// what they have but can add nothing.
    Suspend(projects::LifecycleArgs),
    /// Resumes a suspended project.
    Resume(projects::LifecycleArgs),
    /// Terminates an active or suspended project, for good: it grants nothing any more.
    Terminate(projects::LifecycleArgs),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Prints the schema version of the database and of this binary.
    Status,
    /// Applies pending migrations.
    Migrate,
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(data) = args.data {
        config.data_dir = data;
    }
    if let Some(url) = args.database {
        config.database = Some(url);
    }
    let url = config.database_url();
    let settings = PoolSettings {
        max_connections: config.database_max_connections,
        ..PoolSettings::default()
    };
    // Only `db migrate` may create or migrate a database: a mistyped --data or --database
    // must not leave an empty cloud behind to operate on.
    let db = match &args.command {
        AdminCommand::Db(DbCommand::Migrate) => {
            if config.database.is_none() {
                // The default database lives in the data directory, as `nefos serve` makes it.
                crate::data_dir::create(&config.data_dir).await?;
            }
            let db = nefos_db::Database::connect(&url, &settings).await?;
            let status = db.migrate().await?;
            println!(
                "schema at version {} ({} migrations applied)",
                status.version, status.applied
            );
            return Ok(());
        }
        _ => nefos_db::Database::connect_existing(&url, &settings)
            .await
            .map_err(open_error)?,
    };
    if let AdminCommand::Db(DbCommand::Status) = &args.command {
        let binary = nefos_db::MIGRATIONS.last().map_or(0, |m| m.version);
        println!("database schema version: {}", db.schema_version().await?);
        println!("binary schema version:   {binary}");
        return Ok(());
    }
    db.check_schema().await.map_err(open_error)?;
    let quotas = Quotas::new(db.clone());
    if matches!(
        args.command,
        AdminCommand::Resource(_)
            | AdminCommand::Quota(_)
            | AdminCommand::Usage(_)
            | AdminCommand::Network(_)
    ) {
        crate::server::register_quota_resources(&quotas).await?;
    }
    let identity = Identity::new(db, config.identity_config());
    match args.command {
        AdminCommand::Bootstrap(bootstrap_args) => {
            bootstrap(&identity, &config, bootstrap_args).await
        }
        AdminCommand::User(command) => user(&identity, command).await,
        AdminCommand::Project(command) => project(&identity, &quotas, command).await,
        AdminCommand::Resource(command) => resource::run(&quotas, command).await,
        AdminCommand::Quota(command) => quota::run(&identity, &quotas, command).await,
        AdminCommand::Usage(command) => usage::run(&identity, &quotas, command).await,
        AdminCommand::Blocks(command) => {
            blocks(&config, identity.database().clone(), command).await
        }
        AdminCommand::Node(command) => node(&config, identity.database().clone(), command).await,
        AdminCommand::Server(command) => {
            migrations::run(&config, identity.database().clone(), command).await
        }
        AdminCommand::Network(command) => {
            let networks = nefos_network::Networks::new(
                identity.database().clone(),
                quotas,
                nefos_network::NetworkSettings::default(),
            );
            network::run(&networks, command).await
        }
        AdminCommand::Reconcile(command) => {
            reconcile(identity.database().clone(), &config, command).await
        }
        // Handled above, before the schema check.
        AdminCommand::Db(_) => Ok(()),
    }
}

/// What an operator should do about a database the command cannot use.
fn open_error(error: DbError) -> anyhow::Error {
    match error {
        DbError::NoDatabase { path } => anyhow::anyhow!(
            "no database at {}; run `nefos admin db migrate` or start `nefos up`",
            path.display()
        ),
        DbError::SchemaTooOld { database, binary } => anyhow::anyhow!(
            "the database schema is at version {database}, behind this binary's {binary}; \
             run `nefos admin db migrate` first"
        ),
        other => other.into(),
    }
}

/// `nefos admin bootstrap`: see [`crate::bootstrap`].
async fn bootstrap(
    identity: &Identity,
    config: &Config,
    args: BootstrapArgs,
) -> anyhow::Result<()> {
    let exists = bootstrap::admin_exists(identity).await?;
    let password_file = args
        .password_file
        .unwrap_or_else(|| config.data_dir.join("admin-password"));
    // A password nobody gave is shown once and saved before it is used, so that a crash in
    // between leaves a saved password rather than an administrator nobody can log in as.
    let mut announce = None;
    let password = match args.admin_password {
        Some(password) => Some(password),
        None if !exists || args.reset_password => {
            // What an earlier run saved before it failed to create the administrator.
            let saved = match exists {
                false => crate::data_dir::read_if_exists(&password_file)
                    .await?
                    .map(|text| text.trim().to_owned())
                    .filter(|p| !p.is_empty()),
                true => None,
            };
            let password = match saved {
                Some(password) => password,
                None => {
                    let password = generate_password();
                    crate::data_dir::save_private(&password_file, format!("{password}\n"))
                        .await
                        .context("saving the generated password failed")?;
                    password
                }
            };
            announce = Some(password.clone());
            Some(password)
        }
        None => None,
    };
    let outcome =
        bootstrap::ensure_admin(identity, password.as_deref(), args.reset_password).await?;
    let user = bootstrap::ADMIN_USER;
    match outcome {
        AdminOutcome::Created => println!(
            "created the cloud administrator: user {user}, system project {ADMIN_PROJECT}, role admin"
        ),
        AdminOutcome::Unchanged => {
            println!("the cloud administrator {user} exists; nothing changed");
        }
        AdminOutcome::RoleRestored => println!(
            "the cloud administrator {user} had lost its admin role on {ADMIN_PROJECT}; granted it again"
        ),
        AdminOutcome::PasswordReset => {
            println!("password of {user} reset; its tokens are revoked");
        }
        AdminOutcome::OtherPassword => anyhow::bail!(
            "the cloud administrator {user} exists with another password, left as it is; \
             add --reset-password to set it"
        ),
    }
    if let Some(password) = announce {
        println!("password: {password}");
        println!("saved in: {}", password_file.display());
    }
    Ok(())
}

async fn user(identity: &Identity, command: UserCommand) -> anyhow::Result<()> {
    let op = Caller::Operator;
    match command {
        UserCommand::Create {
            name,
            email,
            password,
        } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(generate_password);
            let new = NewUser {
                name,
                email,
                password: Some(password.clone()),
                enabled: true,
            };
            let user = identity.create_user(op, new).await?;
            print_users(&[user]);
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List => print_users(&identity.users(op, &UserFilter::default()).await?),
        UserCommand::Show { user } => {
            let user = identity.user_by_id_or_name(op, &user).await?;
            print_users(std::slice::from_ref(&user));
            let filter = RoleAssignmentFilter {
                user_id: Some(user.id.clone()),
                ..Default::default()
            };
            let assignments = identity.role_assignments(op, &filter).await?;
            let mut table = table(&["project", "role"]);
            for a in assignments {
                let project = identity.project(op, &a.project_id).await?;
                table.add_row(vec![project.name, a.role.to_string()]);
            }
            println!("{table}");
        }
        UserCommand::SetPassword { user, password } => {
            let user = identity.user_by_id_or_name(op, &user).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(generate_password);
            let patch = UserPatch {
                password: Some(password.clone()),
                ..Default::default()
            };
            identity.update_user(op, &user.id, patch).await?;
            println!("password of {} changed; its tokens are revoked", user.name);
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::Disable { user } => set_enabled(identity, &user, false).await?,
        UserCommand::Enable { user } => set_enabled(identity, &user, true).await?,
    }
    Ok(())
}

async fn set_enabled(identity: &Identity, user: &str, enabled: bool) -> anyhow::Result<()> {
    let op = Caller::Operator;
    let user = identity.user_by_id_or_name(op, user).await?;
    let patch = UserPatch {
        enabled: Some(enabled),
        ..Default::default()
    };
    let user = identity.update_user(op, &user.id, patch).await?;
    print_users(&[user]);
    Ok(())
}

async fn project(
    identity: &Identity,
    quotas: &Quotas,
    command: ProjectCommand,
) -> anyhow::Result<()> {
    let op = Caller::Operator;
    match command {
        ProjectCommand::Create { name, description } => {
            let project = identity
                .create_project(
                    op,
                    NewProject {
                        name,
                        description,
                        enabled: true,
                    },
                )
                .await?;
            print_projects(quotas, &[project]).await?;
        }
        ProjectCommand::List => {
            print_projects(
                quotas,
                &identity.projects(op, &ProjectFilter::default()).await?,
            )
            .await?;
        }
        ProjectCommand::Show { project } => {
            let project = identity.project_by_id_or_name(op, &project).await?;
            print_projects(quotas, std::slice::from_ref(&project)).await?;
            let filter = RoleAssignmentFilter {
                project_id: Some(project.id.clone()),
                ..Default::default()
            };
            let mut table = table(&["member", "role"]);
            for a in identity.role_assignments(op, &filter).await? {
                let user = identity.user(op, &a.user_id).await?;
                table.add_row(vec![user.name, a.role.to_string()]);
            }
            println!("{table}");
        }
        ProjectCommand::AddMember {
            project,
            user,
            role,
        } => {
            let role: Role = role.parse().context("roles are admin, member and reader")?;
            let project = identity.project_by_id_or_name(op, &project).await?;
            let user = identity.user_by_id_or_name(op, &user).await?;
            identity.grant_role(op, &project.id, &user.id, role).await?;
            println!("{} is {role} of {}", user.name, project.name);
        }
        ProjectCommand::RemoveMember {
            project,
            user,
            role,
        } => {
            let role: Option<Role> = match role {
                Some(role) => Some(role.parse().context("roles are admin, member and reader")?),
                None => None,
            };
            let project = identity.project_by_id_or_name(op, &project).await?;
            let user = identity.user_by_id_or_name(op, &user).await?;
            identity
                .revoke_role(op, &project.id, &user.id, role)
                .await?;
            println!("removed {} from {}", user.name, project.name);
        }
        ProjectCommand::Application(command) => {
            projects::applications(identity, quotas, command).await?;
        }
        ProjectCommand::Suspend(args) => {
            projects::lifecycle(identity, quotas, LifecycleAction::Suspend, args).await?;
        }
        ProjectCommand::Resume(args) => {
            projects::lifecycle(identity, quotas, LifecycleAction::Resume, args).await?;
        }
        ProjectCommand::Terminate(args) => {
            projects::lifecycle(identity, quotas, LifecycleAction::Terminate, args).await?;
        }
    }
    Ok(())
}

fn print_users(users: &[User]) {
    let mut table = table(&["id", "name", "email", "enabled", "created"]);
    for u in users {
        table.add_row(vec![
            u.id.clone(),
            u.name.clone(),
            u.email.clone().unwrap_or_default(),
            u.enabled.to_string(),
            date(u.created_at),
        ]);
    }
    println!("{table}");
}

/// Projects with their Synnefo state (`active`, `suspended`, …) beside Keystone's fields.
async fn print_projects(quotas: &Quotas, projects: &[Project]) -> anyhow::Result<()> {
    let query = ProjectQuery {
        all: true,
        ..ProjectQuery::default()
    };
    let states: HashMap<String, String> = quotas
        .projects(Caller::Operator, &query)
        .await?
        .into_iter()
        .map(|p| (p.id, p.state))
        .collect();
    let mut table = table(&["id", "name", "kind", "enabled", "state", "description"]);
    for p in projects {
        table.add_row(vec![
            p.id.clone(),
            p.name.clone(),
            p.kind.as_str().to_owned(),
            p.enabled.to_string(),
            states.get(&p.id).cloned().unwrap_or_default(),
            p.description.clone(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn node(config: &Config, db: nefos_db::Database, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List => list_nodes(db).await,
        NodeCommand::Enroll {
            name,
            valid_minutes,
        } => {
            let valid_for = Duration::from_secs(valid_minutes.saturating_mul(60));
            let enrolment = nefos_compute::NodeRegistry::new(db)
                .enroll(&name, valid_for)
                .await?;
            let token = enrolment.join_token.expose();
            println!(
                "join token of node {name}, usable once until {}:",
                from_micros(enrolment.expires_at).to_rfc3339()
            );
            println!("{token}");
            println!(
                "on the node: nefos node --control-plane URL_OF_THE_INTERNAL_API --join-token {token}"
            );
            Ok(())
        }
        NodeCommand::Revoke { name } => {
            nefos_compute::NodeRegistry::new(db).revoke(&name).await?;
            println!("node {name} is revoked");
            Ok(())
        }
        NodeCommand::Drain {
            name,
            keep_servers,
            parallel,
        } => {
            nefos_compute::NodeRegistry::new(db.clone())
                .set_drained(&name, true, None)
                .await?;
            println!("node {name} is drained: nothing new is placed there");
            if keep_servers {
                return Ok(());
            }
            migrations::evacuate(config, db, &name, parallel).await
        }
        NodeCommand::Remove { name } => {
            let scope = nefos_db::compute::ServerScope {
                node: Some(&name),
                ..nefos_db::compute::ServerScope::default()
            };
            let servers = nefos_db::compute::list_servers(db.pool(), &scope).await?;
            if !servers.is_empty() {
                anyhow::bail!(
                    "node {name} holds {} server(s): drain it first (nefos admin node drain {name})",
                    servers.len()
                );
            }
            let moving = nefos_db::compute::MigrationSelection {
                node: Some(&name),
                under_way: true,
                ..nefos_db::compute::MigrationSelection::default()
            };
            if !nefos_db::compute::list_migrations(db.pool(), &moving)
                .await?
                .is_empty()
            {
                anyhow::bail!("a server is moving to or from node {name}: wait for it to end");
            }
            nefos_compute::NodeRegistry::new(db).revoke(&name).await?;
            println!("node {name} is removed from the cloud");
            Ok(())
        }
        NodeCommand::Undrain { name } => {
            nefos_compute::NodeRegistry::new(db)
                .set_drained(&name, false, None)
                .await?;
            println!("node {name} takes new servers again");
            Ok(())
        }
    }
}

/// `nefos admin reconcile servers`: the reconciler, driving the nodes with the control
/// plane's key.
async fn reconcile(
    db: nefos_db::Database,
    config: &Config,
    command: ReconcileCommand,
) -> anyhow::Result<()> {
    let ReconcileCommand::Servers {
        dry_run,
        destroy_unknown,
        json,
    } = command;
    let key_config = config.clone();
    let key = tokio::task::spawn_blocking(move || key_config.cluster_secret())
        .await
        .context("reading the control plane's key failed")??;
    let nodes = nefos_compute::NodeRpc::new(nefos_compute::NodeRegistry::new(db.clone()), key);
    let reconciler = nefos_compute::Reconciler::new(db.clone(), nodes, Quotas::new(db));
    let mode = nefos_compute::ReconcileMode {
        dry_run,
        destroy_unknown,
    };
    let report = reconciler.reconcile_all(mode).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["rule", "server", "node", "repair"]);
    for repair in &report.repairs {
        table.add_row([
            repair.rule.to_owned(),
            repair.server.clone(),
            repair.node.clone(),
            repair.detail.clone(),
        ]);
    }
    println!("{table}");
    println!(
        "{} repair(s){} on node(s) {}; skipped (down or silent): {}",
        report.repairs.len(),
        if dry_run {
            " to make (dry run)"
        } else {
            " made"
        },
        report.nodes_checked.join(", "),
        if report.nodes_skipped.is_empty() {
            "none".to_owned()
        } else {
            report.nodes_skipped.join(", ")
        }
    );
    Ok(())
}

async fn list_nodes(db: nefos_db::Database) -> anyhow::Result<()> {
    let nodes = nefos_compute::NodeRegistry::new(db).list().await?;
    let now = nefos_db::time::now_micros();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id",
        "state",
        "rpc",
        "cpus",
        "ram MiB",
        "disk free GiB",
        "VMs",
        "accel",
        "guest CPU",
        "last heartbeat",
    ]);
    for node in nodes {
        let alive = node.is_up(now);
        table.add_row([
            node.info.id.clone(),
            match (alive, node.drained) {
                (true, false) => "up",
                (true, true) => "up, drained",
                (false, _) => "down",
            }
            .to_owned(),
            node.info.rpc_url.clone(),
            node.info.cpus.to_string(),
            node.info.ram_mib.to_string(),
            (node.info.disk_free_bytes >> 30).to_string(),
            node.running_vms.to_string(),
            node.info.accelerator.as_str().to_owned(),
            node.info.guest_cpu_model.clone(),
            from_micros(node.heartbeat_at).to_rfc3339(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn blocks(
    config: &Config,
    db: nefos_db::Database,
    command: BlocksCommand,
) -> anyhow::Result<()> {
    let store = nefos_blocks::BlockStore::open(&config.block_store()).await?;
    let quotas = Quotas::new(db.clone());
    let storage = nefos_storage::Storage::new(db, store, quotas);
    match command {
        BlocksCommand::Gc { older_than_hours } => {
            let report = storage
                .collect_garbage(Duration::from_secs(older_than_hours * 3600))
                .await?;
            println!(
                "listed {} blocks: {} referenced, {} too recent, {} deleted ({} bytes), {} put back",
                report.listed,
                report.referenced,
                report.recent,
                report.deleted,
                report.deleted_bytes,
                report.restored
            );
            for (hash, error) in &report.failed {
                eprintln!("could not delete {hash}: {}", nefos_api::error_chain(error));
            }
            if !report.failed.is_empty() {
                anyhow::bail!("{} blocks could not be deleted", report.failed.len());
            }
        }
        BlocksCommand::Verify => {
            let report = storage.verify_blocks().await?;
            println!("checked {} blocks", report.checked);
            for damaged in &report.damaged {
                println!(
                    "damaged {}: its {} bytes hash to {}",
                    damaged.hash, damaged.size, damaged.actual
                );
            }
            for (hash, error) in &report.unreadable {
                println!("unreadable {hash}: {}", nefos_api::error_chain(error));
            }
            if !report.is_clean() {
                anyhow::bail!(
                    "{} damaged and {} unreadable blocks",
                    report.damaged.len(),
                    report.unreadable.len()
                );
            }
        }
    }
    Ok(())
}
