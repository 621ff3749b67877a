//! `nefos image …`: images through Glance v2 (and Plankton, Synnefo's image API, to
//! register an object already in the store), in the shapes of `nefos-image-api`.
//! An image is named by its id or by a name only it has.

mod download;
pub(crate) mod glance;
mod upload;
mod view;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use nefos_image_api::glance::{AddMember, MemberAnswer, MemberList, MemberView};
use reqwest::Method;

use self::glance::{Glance, check, send};
use self::upload::{DiskFormat, Metadata, Visibility};
use super::Session;
use super::output::FormatArg;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Lists the images you can use: yours, public ones and those shared with you that
    /// you accepted (or, with an option, another selection).
    List(ListArgs),
    /// One image: every attribute and property.
    Show {
        /// The image's id or name.
        image: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Uploads a disk image file as a new image (Glance: create, then send the data).
    Upload(Box<UploadArgs>),
    /// Registers an object of your account (CONTAINER/OBJECT) as an image, without
    /// copying it (Plankton).
    Register(Box<RegisterArgs>),
    /// Downloads an image's data, verified against its checksum.
    Download {
        /// The image's id or name.
        image: String,
        /// Where to: a file, or `-` for standard output; default: the image's name (or
        /// id) in the current directory.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Deletes images (the data of an uploaded image goes with it; a registered object
    /// stays in its container).
    Delete {
        /// The images' ids or names.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Shares an image with a project; or, as that project, accepts or rejects the offer
    /// (--accept, --reject); or stops sharing it (--remove).
    ///
    /// A shared image appears in the other project's listings once it accepts. Only
    /// images of `shared` visibility (Glance's default) take members.
    Share {
        /// The image's id or name.
        image: String,
        /// The project (id) to share with or to remove; with --accept or --reject, the
        /// project answering (default: your login's).
        project: Option<String>,
        /// Accept an image offered to your project.
        #[arg(long, conflicts_with_all = ["reject", "remove"])]
        accept: bool,
        /// Refuse an image offered to your project.
        #[arg(long, conflicts_with = "remove")]
        reject: bool,
        /// Stop sharing the image with the project.
        #[arg(long)]
        remove: bool,
    },
    /// The projects an image is shared with, and their answers.
    Members {
        /// The image's id or name.
        image: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

/// Which images `nefos image list` shows, besides Glance's default.
#[derive(Debug, Clone, Copy, Args)]
#[group(multiple = false)]
pub struct Selection {
    /// Every image you may see, community images and unanswered offers included.
    #[arg(long)]
    all: bool,
    /// Public images only.
    #[arg(long)]
    public: bool,
    /// Your private images only.
    #[arg(long)]
    private: bool,
    /// Shared images only (yours, and others' you accepted unless --member-status).
    #[arg(long)]
    shared: bool,
    /// Community images only.
    #[arg(long)]
    community: bool,
}

/// An answer to a shared image, to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
    All,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    selection: Selection,
    /// Shared images by your project's answer to them.
    #[arg(long, value_enum)]
    member_status: Option<MemberStatus>,
    /// Only images with this tag (repeat: with every tag).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only images with this name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The disk image file (raw or qcow2).
    file: PathBuf,
    /// The image's name.
    #[arg(long)]
    name: String,
    /// The file's format; default: qcow2 if it starts as one, else raw.
    #[arg(long, value_enum)]
    disk_format: Option<DiskFormat>,
    /// A property KEY=VALUE (os, osfamily, users, description, …); repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// The smallest root disk it boots from, GiB.
    #[arg(long)]
    min_disk: Option<u64>,
    /// The least memory it runs in, MiB.
    #[arg(long)]
    min_ram: Option<u64>,
    /// Who may see it; default: the cloud's (shared: your project and its members).
    #[arg(long, value_enum)]
    visibility: Option<Visibility>,
    /// A tag; repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The object: CONTAINER/OBJECT of your account.
    object: String,
    /// The image's name.
    #[arg(long)]
    name: String,
    /// The object's format; default: qcow2 if it starts as one, else raw.
    #[arg(long, value_enum)]
    disk_format: Option<DiskFormat>,
    /// A property KEY=VALUE; repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    properties: Vec<String>,
    /// Make it public (administrators only).
    #[arg(long)]
    public: bool,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(session: &Session, command: ImageCommand) -> anyhow::Result<()> {
    let glance = Glance::new(session)?;
    match command {
        ImageCommand::List(args) => list(&glance, &args).await,
        ImageCommand::Show { image, format } => {
            let image = glance.find(&image).await?;
            print!("{}", view::image(&image, format.format)?);
            Ok(())
        }
        ImageCommand::Upload(args) => {
            let UploadArgs {
                file,
                name,
                disk_format,
                properties,
                min_disk,
                min_ram,
                visibility,
                tags,
                format,
            } = *args;
            let metadata = Metadata {
                name,
                disk_format,
                properties,
                min_disk,
                min_ram,
                visibility,
                tags,
            };
            let image = upload::upload(&glance, &file, &metadata).await?;
            print!("{}", view::image(&image, format.format)?);
            Ok(())
        }
        ImageCommand::Register(args) => {
            let image = upload::register(
                &glance,
                &args.object,
                &args.name,
                args.disk_format,
                &args.properties,
                args.public,
            )
            .await?;
            print!("{}", view::image(&image, args.format.format)?);
            Ok(())
        }
        ImageCommand::Download { image, file } => {
            let image = glance.find(&image).await?;
            download::download(&glance, &image, file).await
        }
        ImageCommand::Delete { images } => delete(&glance, &images).await,
        ImageCommand::Share {
            image,
            project,
            accept,
            reject,
            remove,
        } => {
            if accept || reject {
                let status = if accept { "accepted" } else { "rejected" };
                answer(&glance, &image, project.as_deref(), status).await
            } else {
                let Some(project) = project else {
                    bail!("name the project (its id) to share the image with or to remove");
                };
                if remove {
                    unshare(&glance, &image, &project).await
                } else {
                    share(&glance, &image, &project).await
                }
            }
        }
        ImageCommand::Members { image, format } => {
            let image = glance.find(&image).await?;
            let path = nefos_image_api::fill(nefos_image_api::glance::IMAGE_MEMBERS, &[&image.id]);
            let members: MemberList = glance
                .json(
                    glance.request(Method::GET, &path),
                    &format!("listing the members of image {}", image.id),
                )
                .await?;
            print!("{}", view::members(&members.members, format.format)?);
            Ok(())
        }
    }
}

async fn list(glance: &Glance<'_>, args: &ListArgs) -> anyhow::Result<()> {
    let selection = args.selection;
    let mut query: Vec<(&str, &str)> = Vec::new();
    let visibility = [
        (selection.all, "all"),
        (selection.public, "public"),
        (selection.private, "private"),
        (selection.shared, "shared"),
        (selection.community, "community"),
    ]
    .into_iter()
    .find_map(|(chosen, value)| chosen.then_some(value));
    if let Some(visibility) = visibility {
        query.push(("visibility", visibility));
    }
    let member_status = match args.member_status {
        Some(MemberStatus::Pending) => Some("pending"),
        Some(MemberStatus::Accepted) => Some("accepted"),
        Some(MemberStatus::Rejected) => Some("rejected"),
        // `--all` means every answer too: an offer is an image one may see.
        Some(MemberStatus::All) => Some("all"),
        None if selection.all => Some("all"),
        None => None,
    };
    if let Some(status) = member_status {
        query.push(("member_status", status));
    }
    if let Some(name) = &args.name {
        query.push(("name", name));
    }
    for tag in &args.tags {
        query.push(("tag", tag));
    }
    let images = glance.list(&query).await?;
    print!("{}", view::list(&images, args.format.format)?);
    Ok(())
}

/// Deletes every image named; one that cannot be deleted does not keep the others.
async fn delete(glance: &Glance<'_>, images: &[String]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for reference in images {
        let result = async {
            let image = glance.find(reference).await?;
            let what = format!("deleting image {}", image.id);
            let path = nefos_image_api::fill(nefos_image_api::glance::IMAGE, &[&image.id]);
            check(
                send(glance.request(Method::DELETE, &path), &what).await?,
                &what,
            )
            .await?;
            println!(
                "deleted image {} ({})",
                image.id,
                image.name.as_deref().unwrap_or("no name")
            );
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = result {
            failures.push(error);
        }
    }
    if images.len() == 1 {
        return failures.pop().map_or(Ok(()), Err);
    }
    if let Some(first) = failures.first() {
        bail!(
            "{} of {} images could not be deleted; first: {first:#}",
            failures.len(),
            images.len()
        );
    }
    Ok(())
}

fn member_path(image: &str, project: &str) -> String {
    nefos_image_api::fill(nefos_image_api::glance::IMAGE_MEMBER, &[image, project])
}

async fn share(glance: &Glance<'_>, reference: &str, project: &str) -> anyhow::Result<()> {
    let image = glance.find(reference).await?;
    let path = nefos_image_api::fill(nefos_image_api::glance::IMAGE_MEMBERS, &[&image.id]);
    let body = AddMember {
        member: project.to_owned(),
    };
    let member: MemberView = glance
        .json(
            glance.request(Method::POST, &path).json(&body),
            &format!("sharing image {} with {project}", image.id),
        )
        .await?;
    println!(
        "image {} shared with project {}: {}; it is listed there once that project accepts \
         (nefos image share --accept {})",
        member.image_id, member.member_id, member.status, member.image_id
    );
    Ok(())
}

/// A project's answer to an image offered to it: `accepted` or `rejected`.
async fn answer(
    glance: &Glance<'_>,
    reference: &str,
    project: Option<&str>,
    status: &str,
) -> anyhow::Result<()> {
    let project = match project {
        Some(project) => project,
        None => glance
            .session()
            .project_id
            .as_deref()
            .context("the login named no project: name the one answering")?,
    };
    let image = glance.find(reference).await?;
    let body = MemberAnswer {
        status: status.to_owned(),
    };
    let member: MemberView = glance
        .json(
            glance
                .request(Method::PUT, &member_path(&image.id, project))
                .json(&body),
            &format!("answering the offer of image {}", image.id),
        )
        .await?;
    println!(
        "image {} for project {}: {}",
        member.image_id, member.member_id, member.status
    );
    Ok(())
}

async fn unshare(glance: &Glance<'_>, reference: &str, project: &str) -> anyhow::Result<()> {
    let image = glance.find(reference).await?;
    let what = format!("removing project {project} from image {}", image.id);
    let request = glance.request(Method::DELETE, &member_path(&image.id, project));
    check(send(request, &what).await?, &what).await?;
    println!("image {} is no longer shared with {project}", image.id);
    Ok(())
}
