//! `nefos up`: an all-in-one cloud on this machine. Creates the data directory, the database,
//! the `admin` and `demo` users (passwords generated once, kept in `DATA/credentials`), a
//! `clouds.yaml` for the OpenStack CLI, the demo guest image (an object of the admin's
//! and the public image `nefos-tiny`) when it is built, and serves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nefos_compute::{ComputeError, NodeRegistry};
use nefos_identity::{
    AuthContext, Caller, Identity, IdentityError, NewUser, PasswordCredentials, Scope, UserRef,
};
use nefos_image::{
    Caller as ImageCaller, Images, ListQuery, MAX_LIMIT, NewImage, ObjectRef, Visibility,
    VisibilityFilter,
};
use nefos_node::{NodeAgent, NodeConfig};
use nefos_storage::{Accessor, ContainerUpdate, VersionSelector, WriteOptions};
use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;

use crate::bootstrap::{self, ADMIN_USER};
use crate::config::Config;
use crate::data_dir::{self, DataDirLock, save_private};
use crate::server::ControlPlane;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "nefos-data")]
    data: PathBuf,
    /// A configuration file (as `nefos serve --config` reads) for what the flags do not
    /// set: `[compute]`, `[quotas]`, `[images]`, `[identity]`, … The flags win for where
    /// the cloud listens and keeps its data.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// URL clients reach the cloud at. Default: http://<listen>.
    #[arg(long)]
    public_url: Option<String>,
    /// Address of the internal API, for node agents (default: a free loopback port; the
    /// node agent of `nefos up` runs in this process and finds it).
    #[arg(long, default_value = "127.0.0.1:0")]
    internal_listen: SocketAddr,
    /// Database URL instead of the SQLite file in the data directory.
    #[arg(long)]
    database: Option<String>,
    /// Do not run a node agent (no VMs on this machine).
    #[arg(long)]
    no_node: bool,
    /// Where the node agent's RPC API listens (default: a free loopback port).
    #[arg(long, default_value = "127.0.0.1:0")]
    node_listen: SocketAddr,
    /// The node agent's accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    accelerator: crate::node::AcceleratorArg,
    /// The demo guest image to upload into the object store and register as the public
    /// image nefos-tiny (once); built by scripts/build-guest-image. Skipped if the file
    /// does not exist.
    #[arg(
        long,
        env = "NEFOS_GUEST_IMAGE",
        default_value = "target/guest/nefos-tiny.raw"
    )]
    guest_image: PathBuf,
}

/// The regular user `nefos up` provides beside the cloud administrator, to try it as.
const DEMO_USER: &str = "demo";

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    data_dir::create(&args.data).await?;
    // Before anything in the directory is touched: a second `nefos up` here would rewrite
    // clouds.yaml and the credentials under the first.
    let _lock = DataDirLock::acquire(&args.data).await?;
    data_dir::tighten(&args.data).await?;
    let file = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let config = Config {
        listen: args.listen,
        public_url: args.public_url.or(file.public_url.clone()),
        data_dir: args.data.clone(),
        database: args.database.or(file.database.clone()),
        internal_listen: args.internal_listen,
        ..file
    };
    let control_plane = ControlPlane::start(&config).await?;
    let credentials_path = args.data.join("credentials");
    let mut credentials = read_credentials(&credentials_path).await?;
    let mut missing = Vec::new();
    for name in [ADMIN_USER, DEMO_USER] {
        if !user_exists(&control_plane.identity, name).await? {
            missing.push(name);
        }
    }
    let mut created = Vec::new();
    if !missing.is_empty() {
        // The passwords are saved before the users exist: a crash in between then leaves a
        // password without its user, which the next start creates with that password, and
        // never a user whose password nobody knows.
        let pending: Vec<(&str, String)> = missing
            .into_iter()
            .map(|name| {
                let password = credentials
                    .entry(name.to_owned())
                    .or_insert_with(generate_password);
                (name, password.clone())
            })
            .collect();
        save_private(&credentials_path, credentials_file(&credentials)).await?;
        for (name, password) in pending {
            create_user(&control_plane.identity, name, password.clone()).await?;
            created.push((name, password));
        }
    }
    create_default_flavors(&control_plane.compute).await?;
    let guest_image =
        match provide_guest_image(&control_plane, &credentials, &args.guest_image).await {
            Ok(provided) => provided,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot import the demo guest image"
                );
                None
            }
        };
    let clouds_path = args.data.join("clouds.yaml");
    save_private(
        &clouds_path,
        clouds_yaml(&control_plane.public_url, &credentials),
    )
    .await?;
    print_banner(
        &control_plane.public_url,
        &control_plane.internal_url,
        &args.data,
        &created,
        &clouds_path,
        guest_image.as_ref(),
    );
    if args.no_node {
        return control_plane.serve(&config).await;
    }
    let node_dir = args.data.join("node");
    let join_token = enroll_local_node(&control_plane, &node_dir).await?;
    let node = NodeConfig {
        id: Some(LOCAL_NODE.to_owned()),
        listen: args.node_listen,
        advertise_url: None,
        data_dir: node_dir,
        control_plane_url: control_plane.internal_url.clone(),
        join_token,
        accelerator: args.accelerator.into(),
        ..NodeConfig::default()
    };
    let node = tokio::spawn(async move {
        match NodeAgent::start(&node).await {
            Ok(agent) => {
                println!(
                    "  node agent:             {} (RPC {})",
                    agent.info().id,
                    agent.info().rpc_url
                );
                if let Err(error) = agent.serve(crate::server::shutdown_signal()).await {
                    tracing::error!(error = %nefos_api::error_chain(&error), "node agent failed");
                }
            }
            Err(error) => {
                tracing::error!(error = %nefos_api::error_chain(&error), "no node agent: VMs cannot run here");
            }
        }
    });
    let served = control_plane.serve(&config).await;
    node.abort();
    served
}

/// The flavors a new cloud starts with: Nova's classic sizes, and two small enough for
/// the demo guest on a laptop.
const DEFAULT_FLAVORS: &[(&str, &str, u32, u64, u64)] = &[
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
    ("6", "m1.nano", 1, 128, 1),
    ("7", "m1.micro", 1, 256, 2),
];

/// Creates the default flavors in a cloud that has none (an operator's deletions of some
/// are kept).
async fn create_default_flavors(compute: &nefos_compute::Compute) -> anyhow::Result<()> {
    if compute.has_flavors().await? {
        return Ok(());
    }
    for &(id, name, vcpus, ram_mib, disk_gib) in DEFAULT_FLAVORS {
        let flavor = nefos_compute::NewFlavor {
            id: Some(id.to_owned()),
            name: name.to_owned(),
            vcpus,
            ram_mib,
            disk_gib,
            ephemeral_gib: 0,
            swap_mib: 0,
            rxtx_factor: 1.0,
            is_public: true,
            description: None,
        };
        compute
            .create_flavor(None, flavor)
            .await
            .with_context(|| format!("cannot create the flavor {name}"))?;
    }
    tracing::info!(count = DEFAULT_FLAVORS.len(), "created the default flavors");
    Ok(())
}

/// The id of the node agent `nefos up` runs.
const LOCAL_NODE: &str = "local";

/// A join token for the local node unless it holds a credential already. A node without
/// one (a first start, or a crash before it saved its credential) is enrolled afresh, so
/// whatever the database had for it goes first.
async fn enroll_local_node(
    control_plane: &ControlPlane,
    node_dir: &Path,
) -> anyhow::Result<Option<String>> {
    let credential = node_dir.join(nefos_node::credential::CREDENTIAL_FILE);
    if tokio::fs::try_exists(&credential)
        .await
        .with_context(|| format!("cannot look for {}", credential.display()))?
    {
        return Ok(None);
    }
    let nodes = NodeRegistry::new(control_plane.identity.database().clone());
    match nodes.revoke(LOCAL_NODE).await {
        Ok(()) | Err(ComputeError::UnknownNode { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    // The agent exchanges it within moments, in this process.
    let enrolment = nodes.enroll(LOCAL_NODE, Duration::from_secs(600)).await?;
    Ok(Some(enrolment.join_token.expose().to_owned()))
}

/// The container in the admin's object store that holds the demo guest image.
const IMAGES_CONTAINER: &str = "images";

/// The name of the public image `nefos up` makes of the demo guest.
const GUEST_IMAGE_NAME: &str = "nefos-tiny";

/// The demo guest image as `nefos up` provides it: an object of the admin's, and the
/// public image registered from it.
#[derive(Debug)]
struct GuestImage {
    /// `images/<file name>`.
    object: String,
    /// `None` when the registration failed (the object is still there for a later start).
    image_id: Option<String>,
}

/// Uploads the demo guest image into the admin's `images` container unless it is there,
/// and registers it as a public image unless it is one. `None` when there is no guest
/// image file.
async fn provide_guest_image(
    control_plane: &ControlPlane,
    credentials: &BTreeMap<String, String>,
    image: &Path,
) -> anyhow::Result<Option<GuestImage>> {
    let Some(name) = image.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    if !image.exists() {
        return Ok(None);
    }
    let password = credentials
        .get(ADMIN_USER)
        .context("no admin password in the credentials file")?;
    let token = control_plane
        .identity
        .authenticate_password(
            PasswordCredentials {
                user: UserRef::Name(ADMIN_USER.to_owned()),
                password: password.clone(),
            },
            Scope::ProjectName(ADMIN_USER.to_owned()),
        )
        .await?;
    let admin = &token.context;
    let project = admin
        .project_id()
        .context("the admin token has no project")?
        .to_owned();
    import_guest_object(control_plane, admin, &project, name, image).await?;
    let image_id = match register_guest_image(control_plane, admin, &project, name).await {
        Ok(id) => Some(id),
        Err(error) => {
            // The object stays; the next start tries again.
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot register the demo guest image as an image"
            );
            None
        }
    };
    Ok(Some(GuestImage {
        object: format!("{IMAGES_CONTAINER}/{name}"),
        image_id,
    }))
}

/// Uploads the guest image file as object `images/<name>` of the admin's unless the
/// object exists.
async fn import_guest_object(
    control_plane: &ControlPlane,
    admin: &AuthContext,
    project: &str,
    name: &str,
    image: &Path,
) -> anyhow::Result<()> {
    let who = Accessor::Token(admin);
    let storage = &control_plane.storage;
    let existing = storage
        .object(
            who,
            project,
            IMAGES_CONTAINER,
            name,
            VersionSelector::Current,
        )
        .await;
    if existing.is_ok() {
        return Ok(());
    }
    storage
        .put_container(who, project, IMAGES_CONTAINER, &ContainerUpdate::default())
        .await?;
    let file = tokio::fs::File::open(image)
        .await
        .with_context(|| format!("cannot open {}", image.display()))?;
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 1 << 20];
        let read = file.read(&mut chunk).await?;
        chunk.truncate(read);
        Ok::<_, std::io::Error>((read > 0).then(|| (bytes::Bytes::from(chunk), file)))
    });
    let options = WriteOptions {
        content_type: Some("application/octet-stream".to_owned()),
        ..WriteOptions::default()
    };
    storage
        .put_object(who, project, IMAGES_CONTAINER, name, chunks, options)
        .await?;
    tracing::info!(path = %format!("{IMAGES_CONTAINER}/{name}"), "imported the demo guest image");
    Ok(())
}

/// Registers object `images/<name>` of the admin's as the public image
/// [`GUEST_IMAGE_NAME`] unless it is an image already (which is left as the admin may
/// have changed it); the image's id.
async fn register_guest_image(
    control_plane: &ControlPlane,
    admin: &AuthContext,
    project: &str,
    name: &str,
) -> anyhow::Result<String> {
    let images = Images::new(control_plane.storage.clone());
    let caller = ImageCaller::new(admin);
    let mut query = ListQuery {
        owner: Some(project.to_owned()),
        visibility: VisibilityFilter::All,
        limit: Some(MAX_LIMIT),
        ..ListQuery::default()
    };
    loop {
        let page = images.list(caller, &query).await?;
        let registered = page.images.iter().find(|image| {
            image
                .location
                .as_ref()
                .is_some_and(|l| l.container == IMAGES_CONTAINER && l.name == name)
        });
        if let Some(image) = registered {
            return Ok(image.id.clone());
        }
        match page.next_marker {
            Some(marker) => query.marker = Some(marker),
            None => break,
        }
    }
    let new = NewImage {
        name: Some(GUEST_IMAGE_NAME.to_owned()),
        visibility: Some(Visibility::Public),
        disk_format: Some("raw".to_owned()),
        min_disk: 1,
        properties: BTreeMap::from([
            ("os".to_owned(), "debian".to_owned()),
            ("osfamily".to_owned(), "linux".to_owned()),
            ("users".to_owned(), "root".to_owned()),
            (
                "description".to_owned(),
                "nefos test guest (Debian, serial console)".to_owned(),
            ),
        ]),
        ..NewImage::default()
    };
    let object = ObjectRef {
        project_id: project.to_owned(),
        container: IMAGES_CONTAINER.to_owned(),
        name: name.to_owned(),
    };
    let image = images.register(caller, &object, new).await?;
    tracing::info!(id = %image.id, name = GUEST_IMAGE_NAME, "registered the demo guest image");
    Ok(image.id)
}

async fn user_exists(identity: &Identity, name: &str) -> anyhow::Result<bool> {
    match identity.user_by_id_or_name(Caller::Operator, name).await {
        Ok(_) => Ok(true),
        Err(IdentityError::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Creates one of the users `nefos up` provides, with `password`.
async fn create_user(identity: &Identity, name: &str, password: String) -> anyhow::Result<()> {
    if name == ADMIN_USER {
        // The same path as `nefos admin bootstrap`: the system project, the user, the role.
        bootstrap::ensure_admin(identity, Some(&password), false).await?;
        return Ok(());
    }
    let new = NewUser {
        name: name.to_owned(),
        email: None,
        password: Some(password),
        enabled: true,
    };
    identity.create_user(Caller::Operator, new).await?;
    Ok(())
}

pub fn generate_password() -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// `DATA/credentials`: one `user password` line each.
async fn read_credentials(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(' '))
        .map(|(user, password)| (user.trim().to_owned(), password.trim().to_owned()))
        .collect())
}

fn credentials_file(credentials: &BTreeMap<String, String>) -> String {
    let mut text =
        String::from("# nefos up: user password (generated once; keep this file private)\n");
    for (user, password) in credentials {
        text.push_str(&format!("{user} {password}\n"));
    }
    text
}

/// A `clouds.yaml` with one cloud per user whose password is known.
fn clouds_yaml(public_url: &str, credentials: &BTreeMap<String, String>) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut yaml = String::from(
        "# Written by `nefos up`. Use: openstack --os-cloud nefos-demo token issue\nclouds:\n",
    );
    for (user, password) in credentials {
        yaml.push_str(&format!(
            "  nefos-{user}:\n    auth:\n      auth_url: {url}\n      username: {name}\n      password: {password}\n      project_name: {name}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
            user = user,
            url = quote(&format!("{public_url}/identity/v3")),
            name = quote(user),
            password = quote(password),
        ));
    }
    yaml
}

fn print_banner(
    public_url: &str,
    internal_url: &str,
    data: &Path,
    created: &[(&str, String)],
    clouds: &Path,
    guest_image: Option<&GuestImage>,
) {
    println!("nefos is up");
    println!("  identity (Keystone v3): {public_url}/identity/v3");
    println!("  internal API (nodes):   {internal_url}");
    println!("  data directory:         {}", data.display());
    if created.is_empty() {
        println!(
            "  credentials:            {}",
            data.join("credentials").display()
        );
    } else {
        println!(
            "  new users (passwords shown once, also saved in {}):",
            data.join("credentials").display()
        );
        for (user, password) in created {
            println!("    {user:<6} {password}");
        }
    }
    println!("  clouds.yaml:            {}", clouds.display());
    if let Some(guest) = guest_image {
        println!(
            "  guest image:            {} (in admin's object store)",
            guest.object
        );
        if let Some(id) = &guest.image_id {
            println!("  guest image id:         {id} (public image {GUEST_IMAGE_NAME})");
        }
    }
    println!(
        "try: OS_CLIENT_CONFIG_FILE={} openstack --os-cloud nefos-demo token issue",
        clouds.display()
    );
}
