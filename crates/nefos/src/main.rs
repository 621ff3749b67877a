//! `nefos`: the one binary of the nefos cloud (docs/design.md §1).

/// mimalloc rather than glibc's malloc: a page of servers allocates and frees hundreds of
/// thousands of small values across the runtime's threads, where glibc's arenas spent
/// about half of the page's time (`server-list-bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod bootstrap;
mod client;
mod config;
mod data_dir;
mod jobs;
mod node;
mod server;
mod telemetry;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nefos",
    version,
    about = "An IaaS cloud for research and education"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs an all-in-one cloud on this machine with embedded defaults.
    Up(up::UpArgs),
    /// Runs the control plane: every HTTP API, from a configuration file.
    Serve(server::ServeArgs),
    /// Runs the node agent of a hypervisor host: QEMU VMs for the control plane.
    Node(node::NodeArgs),
    /// Operator commands on the database: users, projects, quotas, nodes, blocks, schema.
    Admin(admin::AdminArgs),
    /// Files in the object store: list, upload, download, delete, share, publish.
    Object {
        #[command(flatten)]
        cloud: Box<client::CloudArgs>,
        #[command(subcommand)]
        command: client::object::ObjectCommand,
    },
    /// Images: list, show, upload, register, download, delete, share.
    Image {
        #[command(flatten)]
        cloud: Box<client::CloudArgs>,
        #[command(subcommand)]
        command: client::image::ImageCommand,
    },
    /// Servers: list, show, create, delete, start, stop, reboot, console.
    Server {
        #[command(flatten)]
        cloud: Box<client::CloudArgs>,
        #[command(subcommand)]
        command: client::server::ServerCommand,
    },
    /// Projects: list, show, apply for, join and leave them; members of your own.
    Project {
        #[command(flatten)]
        cloud: Box<client::CloudArgs>,
        #[command(subcommand)]
        command: client::account::ProjectCommand,
    },
    /// Your quotas: limits and usage in each of your projects.
    Quota {
        #[command(flatten)]
        cloud: Box<client::CloudArgs>,
        #[command(subcommand)]
        command: client::account::QuotaCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log their work; one-shot commands only what goes wrong.
    let default_log = match cli.command {
        Command::Up(_) | Command::Serve(_) | Command::Node(_) => "info",
        Command::Admin(_)
        | Command::Object { .. }
        | Command::Image { .. }
        | Command::Server { .. }
        | Command::Project { .. }
        | Command::Quota { .. } => "warn",
    };
    let _log = telemetry::init(default_log);
    // Servers and operator commands write the cloud's secrets and tenants' data; the
    // client writes the user's own downloads, which keep the user's umask.
    if !matches!(
        cli.command,
        Command::Object { .. }
            | Command::Image { .. }
            | Command::Server { .. }
            | Command::Project { .. }
            | Command::Quota { .. }
    ) {
        data_dir::restrict_umask();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nefos: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Serve(args) => server::run(args).await,
            Command::Node(args) => node::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Object { cloud, command } => {
                let session = client::Session::login(&cloud).await?;
                client::object::run(&session, command).await
            }
            Command::Image { cloud, command } => {
                let session = client::Session::login(&cloud).await?;
                client::image::run(&session, command).await
            }
            Command::Server { cloud, command } => {
                let session = client::Session::login(&cloud).await?;
                client::server::run(&session, command).await
            }
            Command::Project { cloud, command } => {
                let session = client::Session::login(&cloud).await?;
                client::account::run_project(&session, command).await
            }
            Command::Quota { cloud, command } => {
                let session = client::Session::login(&cloud).await?;
                client::account::run_quota(&session, command).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nefos: {error:#}");
            ExitCode::FAILURE
        }
    }
}
