//! `nefos server …`: servers through the compute API (Nova v2.1), in the shapes of
//! `nefos-compute-api`. A server is named by its id or by a name only it has; images by
//! id or name through the image service, flavors by id or name.

mod nova;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use nefos_compute_api::paths;
use nefos_compute_api::types::{ConsoleOutput, Server, ServerBody, ServerCreate};
use reqwest::Method;
use serde_json::{Value, json};

use self::nova::Nova;
use super::Session;
use super::image::glance::Glance;
use super::output::{Format, FormatArg, Listing};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Your servers.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// One server, every attribute.
    Show {
        /// The server's id or name.
        server: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Creates a server from an image.
    Create(Box<CreateArgs>),
    /// Deletes servers.
    Delete {
        /// The servers' ids or names.
        #[arg(required = true)]
        servers: Vec<String>,
        /// Wait until they are gone.
        #[arg(long)]
        wait: bool,
    },
    /// Starts a stopped server.
    Start(PowerArgs),
    /// Stops a server (the guest is asked to shut down, then forced).
    Stop(PowerArgs),
    /// Reboots a server: the guest is asked to restart (soft), or the machine is reset
    /// (--hard).
    Reboot {
        #[command(flatten)]
        power: PowerArgs,
        #[arg(long)]
        hard: bool,
    },
    /// The server's serial console: the last lines it printed.
    Console {
        /// The server's id or name.
        server: String,
        /// How many lines (default: all the cloud keeps).
        #[arg(long)]
        lines: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct PowerArgs {
    /// The server's id or name.
    server: String,
    /// Wait until the server has done it.
    #[arg(long)]
    wait: bool,
}

/// A server's networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum NetworkChoice {
    /// The cloud's default network.
    #[default]
    Auto,
    /// No network interface.
    None,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The new server's name.
    name: String,
    /// The image to boot: its id or name.
    #[arg(long)]
    image: String,
    /// The flavor: its id or name.
    #[arg(long)]
    flavor: String,
    /// An SSH keypair of yours, installed for the guest's administrator.
    #[arg(long)]
    key_name: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    network: NetworkChoice,
    /// A file the guest runs at first boot (cloud-init user data).
    #[arg(long)]
    user_data: Option<std::path::PathBuf>,
    /// Metadata, KEY=VALUE (repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Wait until the server is ACTIVE (or failed), showing its progress.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    format: FormatArg,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub async fn run(session: &Session, command: ServerCommand) -> anyhow::Result<()> {
    let nova = Nova::new(session)?;
    match command {
        ServerCommand::List { format } => {
            let servers = nova.servers().await?;
            let rows: Vec<Value> = servers.iter().map(row).collect();
            print!(
                "{}",
                Listing::new(&["id", "name", "status", "image", "flavor"], &rows)
                    .render(format.format)
            );
            Ok(())
        }
        ServerCommand::Show { server, format } => {
            let server = nova.find(&server).await?;
            print!("{}", show(&server, format.format)?);
            Ok(())
        }
        ServerCommand::Create(args) => create(&nova, session, *args).await,
        ServerCommand::Delete { servers, wait } => {
            let mut ids = Vec::new();
            for name in &servers {
                let server = nova.find(name).await?;
                nova.delete(&server.id).await?;
                ids.push(server.id);
            }
            if wait {
                for id in &ids {
                    wait_for(&nova, id, |s| s.is_none()).await?;
                }
            }
            Ok(())
        }
        ServerCommand::Start(args) => {
            power(&nova, &args, json!({"os-start": null}), "ACTIVE").await
        }
        ServerCommand::Stop(args) => power(&nova, &args, json!({"os-stop": null}), "SHUTOFF").await,
        ServerCommand::Reboot { power: args, hard } => {
            let kind = if hard { "HARD" } else { "SOFT" };
            power(&nova, &args, json!({"reboot": {"type": kind}}), "ACTIVE").await
        }
        ServerCommand::Console { server, lines } => {
            let server = nova.find(&server).await?;
            let body = match lines {
                Some(lines) => json!({"os-getConsoleOutput": {"length": lines}}),
                None => json!({"os-getConsoleOutput": {}}),
            };
            let path = nefos_compute_api::fill(paths::SERVER_ACTION, &[&server.id]);
            let output: ConsoleOutput = nova
                .json(
                    nova.request(Method::POST, &path).json(&body),
                    "reading the console",
                )
                .await?;
            print!("{}", output.output);
            if !output.output.ends_with('\n') {
                println!();
            }
            Ok(())
        }
    }
}

/// A listing row of a server.
fn row(server: &Server) -> Value {
    let image = match &server.image {
        nefos_compute_api::types::ServerImage::Reference { id, .. } => id.clone(),
        nefos_compute_api::types::ServerImage::None(_) => String::new(),
    };
    let flavor = match &server.flavor {
        nefos_compute_api::types::ServerFlavor::Embedded { original_name, .. } => {
            original_name.clone()
        }
        nefos_compute_api::types::ServerFlavor::Reference { id, .. } => id.clone(),
    };
    json!({"id": server.id, "name": server.name, "status": server.status, "image": image, "flavor": flavor})
}

/// A server's every field, as a two-column table, JSON or values.
fn show(server: &Server, format: Format) -> anyhow::Result<String> {
    let fields = serde_json::to_value(server).context("cannot render the server")?;
    if format == Format::Json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&fields)?));
    }
    let rows: Vec<Value> = fields
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(field, value)| json!({"field": field, "value": value}))
                .collect()
        })
        .unwrap_or_default();
    Ok(Listing::new(&["field", "value"], &rows).render(format))
}

async fn create(nova: &Nova<'_>, session: &Session, args: CreateArgs) -> anyhow::Result<()> {
    let glance = Glance::new(session)?;
    let image = glance.find(&args.image).await?;
    let flavor = nova.flavor(&args.flavor).await?;
    let user_data = match &args.user_data {
        Some(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                bytes,
            ))
        }
        None => None,
    };
    let request = ServerCreate {
        name: args.name.clone(),
        image_ref: Some(image.id.clone()),
        flavor_ref: Value::String(flavor),
        networks: Some(Value::String(
            match args.network {
                NetworkChoice::Auto => "auto",
                NetworkChoice::None => "none",
            }
            .to_owned(),
        )),
        key_name: args.key_name.clone(),
        metadata: (!args.properties.is_empty()).then(|| args.properties.iter().cloned().collect()),
        user_data,
        ..ServerCreate::default()
    };
    let created: nefos_compute_api::types::ServerCreatedBody = nova
        .json(
            nova.request(Method::POST, paths::SERVERS)
                .json(&json!({ "server": request })),
            "creating the server",
        )
        .await?;
    let id = created.server.id;
    let server = if args.wait {
        wait_for(nova, &id, |s| s.is_some_and(|s| s.status != "BUILD")).await?
    } else {
        nova.server(&id).await?
    };
    let Some(server) = server else {
        bail!("server {id} was deleted while it was built");
    };
    if args.wait && server.status == "ERROR" {
        let reason = server
            .fault
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        bail!("server {} failed to build: {reason}", server.id);
    }
    print!("{}", show(&server, args.format.format)?);
    if let Some(pass) = created.server.admin_pass {
        eprintln!("administrator password (shown once): {pass}");
    }
    Ok(())
}

async fn power(nova: &Nova<'_>, args: &PowerArgs, body: Value, target: &str) -> anyhow::Result<()> {
    let server = nova.find(&args.server).await?;
    let path = nefos_compute_api::fill(paths::SERVER_ACTION, &[&server.id]);
    nova.send(
        nova.request(Method::POST, &path).json(&body),
        "asking the server",
    )
    .await?;
    if args.wait {
        let done = wait_for(nova, &server.id, |s| {
            s.is_some_and(|s| s.task_state.is_none() && (s.status == target || s.status == "ERROR"))
        })
        .await?;
        if let Some(done) = done
            && done.status != target
        {
            bail!("server {} is {} instead of {target}", done.id, done.status);
        }
    }
    Ok(())
}

/// How long `--wait` waits.
const WAIT_LIMIT: Duration = Duration::from_secs(900);

/// Polls the server until `done` holds (None: it is gone), telling its changes of status on
/// stderr.
async fn wait_for(
    nova: &Nova<'_>,
    id: &str,
    done: impl Fn(Option<&Server>) -> bool,
) -> anyhow::Result<Option<Server>> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let server = nova.server(id).await?;
        let shown = server.as_ref().map_or_else(
            || "deleted".to_owned(),
            |s| match &s.task_state {
                Some(task) => format!("{} ({task})", s.status),
                None => s.status.clone(),
            },
        );
        if shown != last {
            eprintln!("{id}: {shown}");
            last = shown;
        }
        if done(server.as_ref()) {
            return Ok(server);
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!("gave up waiting for server {id} after {WAIT_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Nova<'_> {
    /// The server with this id, or None.
    pub async fn server(&self, id: &str) -> anyhow::Result<Option<Server>> {
        let path = nefos_compute_api::fill(paths::SERVER, &[id]);
        let response = self
            .send_raw(self.request(Method::GET, &path), "reading the server")
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: ServerBody = nova::read(response, "reading the server").await?;
        Ok(Some(body.server))
    }
}
