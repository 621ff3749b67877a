//! `nefos object …`: files in the object store, through the Swift API and its Pithos
//! extensions.

mod delete;
mod download;
mod list;
pub(super) mod names;
mod share;
mod store;
mod upload;

use std::path::PathBuf;

use clap::Subcommand;

use self::store::Account;
use super::Session;
use super::output::{self, FormatArg};

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Lists containers, or the objects of a container.
    List {
        /// The container whose objects to list; without it, the account's containers.
        container: Option<String>,
        /// Only names that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Another account (AUTH_<project>, see `accounts`): what it shares with you.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Lists the accounts that share objects with you, for --account.
    Accounts {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Uploads files and directories (recursively) into a container, creating it if need be.
    ///
    /// An object is named by its file's path as given, with `.` and `..` resolved and what
    /// is left above the start dropped: `../hello.txt` becomes `hello.txt`, `/tmp/a/b`
    /// becomes `tmp/a/b`. A file whose object already holds the same data (its hashmap
    /// matches the object's X-Object-Hash) is skipped, so no new version is made.
    Upload {
        /// The container to upload into.
        container: String,
        /// Files and directories to upload.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The object name of a single file, instead of its path.
        #[arg(long)]
        name: Option<String>,
        /// How many files to send at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Downloads an object, or every object of a container into a directory.
    ///
    /// Each download is checked against the object's X-Object-Hash. A container's objects
    /// are written under the directory by their names; a name with a `..` segment is
    /// skipped (and the command fails) rather than written outside it.
    Download {
        /// The container to download from.
        container: String,
        /// The object to download; without it, every object of the container.
        object: Option<String>,
        /// For one object: a file, `DIR/` (or an existing directory) to keep the name's
        /// last segment there, or `-` for standard output; default: the object's name under
        /// the current directory (refused if it has a `..` segment). For a container: the
        /// directory; default: the container's name.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// How many objects to fetch at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Another account (AUTH_<project>, see `accounts`) that shares the object with you.
        #[arg(long)]
        account: Option<String>,
    },
    /// Deletes objects, or a container with everything in it (--all).
    Delete {
        /// The container to delete from.
        container: String,
        /// The objects to delete (or --all).
        objects: Vec<String>,
        /// Delete every object, then the container itself.
        #[arg(long, conflicts_with = "objects")]
        all: bool,
    },
    /// Shows an object's sharing, or shares it with more users.
    ///
    /// Grants are added to those the object has; nobody loses access unless --clear is
    /// given. The cloud refuses a grant naming a user it does not know.
    Share {
        /// The object's container.
        container: String,
        /// The object to share.
        object: String,
        /// Users who may read it: user names, `*` (every user) or ACCOUNT:GROUP.
        #[arg(long, value_delimiter = ',')]
        read: Vec<String>,
        /// Users who may also change its data, named as for --read.
        #[arg(long, value_delimiter = ',')]
        write: Vec<String>,
        /// Remove every grant first: alone, it stops sharing the object; with --read or
        /// --write, those become its only grants.
        #[arg(long)]
        clear: bool,
    },
    /// Makes an object public and prints its URL (or stops it being public).
    Publish {
        /// The object's container.
        container: String,
        /// The object to publish.
        object: String,
        /// Stop the object being public.
        #[arg(long)]
        revoke: bool,
    },
}

pub async fn run(session: &Session, command: ObjectCommand) -> anyhow::Result<()> {
    let own = || Account::new(session, None);
    match command {
        ObjectCommand::List {
            container,
            prefix,
            account,
            format,
        } => {
            let account = Account::new(session, account.as_deref())?;
            match container {
                None => list::containers(&account, prefix.as_deref(), format.format).await,
                Some(c) => list::objects(&account, &c, prefix.as_deref(), format.format).await,
            }
        }
        ObjectCommand::Accounts { format } => list::accounts(session, format.format).await,
        ObjectCommand::Upload {
            container,
            paths,
            name,
            jobs,
        } => upload::upload(&own()?, &container, paths, name, jobs).await,
        ObjectCommand::Download {
            container,
            object,
            output,
            jobs,
            account,
        } => {
            let account = Account::new(session, account.as_deref())?;
            download::download(&account, &container, object, output, jobs).await
        }
        ObjectCommand::Delete {
            container,
            objects,
            all,
        } => delete::delete(&own()?, &container, &objects, all).await,
        ObjectCommand::Share {
            container,
            object,
            read,
            write,
            clear,
        } => share::share(&own()?, &container, &object, &read, &write, clear).await,
        ObjectCommand::Publish {
            container,
            object,
            revoke,
        } => share::publish(&own()?, &container, &object, revoke).await,
    }
}
