//! `nefos`: the one binary of the nefos cloud (DESIGN §1).

mod admin;
mod config;
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
    /// Operator commands on the database: users, projects, schema.
    Admin(admin::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = telemetry::init();
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
            Command::Admin(args) => admin::run(args).await,
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
