//! Where and as whom to log in: the settings the openstack and swift CLIs read, from flags,
//! `OS_*` variables or a `clouds.yaml` entry, in that order of precedence.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

/// The login settings of every client command.
#[derive(Debug, Clone, Args)]
pub struct CloudArgs {
    /// A cloud of clouds.yaml (OS_CLIENT_CONFIG_FILE, ./clouds.yaml,
    /// ~/.config/openstack/, /etc/openstack/); flags and OS_* variables override it.
    #[arg(long, env = "OS_CLOUD", global = true)]
    os_cloud: Option<String>,
    /// The identity service, e.g. https://cloud.example.org/identity/v3.
    #[arg(long, env = "OS_AUTH_URL", global = true)]
    os_auth_url: Option<String>,
    /// How to log in: `password` (the default) or `token` (with --os-token).
    #[arg(long, env = "OS_AUTH_TYPE", global = true)]
    os_auth_type: Option<String>,
    /// The user to log in as (password login).
    #[arg(long, env = "OS_USERNAME", global = true)]
    os_username: Option<String>,
    /// The user's password.
    #[arg(long, env = "OS_PASSWORD", global = true, hide_env_values = true)]
    os_password: Option<String>,
    /// A token to use instead of a password (--os-auth-type token).
    #[arg(long, env = "OS_TOKEN", global = true, hide_env_values = true)]
    os_token: Option<String>,
    /// The domain of the user, by name (nefos has one: Default).
    #[arg(long, env = "OS_USER_DOMAIN_NAME", global = true)]
    os_user_domain_name: Option<String>,
    /// The domain of the user, by id (nefos has one: default).
    #[arg(long, env = "OS_USER_DOMAIN_ID", global = true)]
    os_user_domain_id: Option<String>,
    /// The project to work in, by name.
    #[arg(long, env = "OS_PROJECT_NAME", global = true)]
    os_project_name: Option<String>,
    /// The project to work in, by id.
    #[arg(long, env = "OS_PROJECT_ID", global = true)]
    os_project_id: Option<String>,
    /// The domain of the project, by name.
    #[arg(long, env = "OS_PROJECT_DOMAIN_NAME", global = true)]
    os_project_domain_name: Option<String>,
    /// The domain of the project, by id.
    #[arg(long, env = "OS_PROJECT_DOMAIN_ID", global = true)]
    os_project_domain_id: Option<String>,
    /// The region whose endpoints to use; default: the catalog's first.
    #[arg(long, env = "OS_REGION_NAME", global = true)]
    os_region_name: Option<String>,
    /// The endpoint interface to use: public (the default), internal or admin.
    #[arg(long, env = "OS_INTERFACE", global = true)]
    os_interface: Option<String>,
    /// A PEM file of the certificate authorities to trust, besides the system's.
    #[arg(long, env = "OS_CACERT", global = true)]
    os_cacert: Option<PathBuf>,
    /// The object-store account URL (…/object/v1/AUTH_<project>), instead of the catalog's;
    /// with a token, no identity service is asked at all.
    #[arg(long, env = "OS_STORAGE_URL", global = true)]
    os_storage_url: Option<String>,
}

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    Password { username: String, password: String },
    Token(String),
}

/// A project or a domain, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Name(String),
    Id(String),
}

/// The settings resolved from every source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` only when a token and a storage URL make the identity service unneeded.
    pub auth_url: Option<String>,
    pub credentials: Credentials,
    pub user_domain: Named,
    pub project: Option<Named>,
    pub project_domain: Named,
    pub region: Option<String>,
    pub interface: String,
    pub cacert: Option<PathBuf>,
    pub storage_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, CloudEntry>,
}

/// The part of a clouds.yaml entry nefos reads.
#[derive(Debug, Default, Deserialize)]
struct CloudEntry {
    #[serde(default)]
    auth: CloudAuth,
    auth_type: Option<String>,
    region_name: Option<String>,
    interface: Option<String>,
    cacert: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct CloudAuth {
    auth_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
}

fn clouds_yaml_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os("OS_CLIENT_CONFIG_FILE") {
        paths.push(PathBuf::from(file));
    }
    paths.push(PathBuf::from("clouds.yaml"));
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(".config/openstack/clouds.yaml"));
    }
    paths.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    paths
}

/// The entry `name` of the first clouds.yaml that has one.
async fn cloud_entry(name: &str) -> anyhow::Result<CloudEntry> {
    for path in clouds_yaml_paths() {
        // A missing or unreadable candidate is skipped, as the openstack CLI does.
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        let file: CloudsFile = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(entry) = file.clouds.into_iter().find(|(n, _)| n == name) {
            return Ok(entry.1);
        }
    }
    bail!("no cloud named {name:?} in any clouds.yaml (set OS_CLIENT_CONFIG_FILE)")
}

/// A flag's (or variable's) value, else the file's.
fn pick<T: Clone>(flag: &Option<T>, file: Option<T>) -> Option<T> {
    flag.clone().or(file)
}

/// A name or an id, the flag pair before the file's pair; `None` when neither is set.
fn named(
    name: (&Option<String>, Option<String>),
    id: (&Option<String>, Option<String>),
) -> Option<Named> {
    match (name.0, id.0) {
        (Some(name), _) => Some(Named::Name(name.clone())),
        (None, Some(id)) => Some(Named::Id(id.clone())),
        (None, None) => name.1.map(Named::Name).or(id.1.map(Named::Id)),
    }
}

impl CloudArgs {
    /// Every setting, from flags, `OS_*` variables and the `--os-cloud` entry.
    pub async fn resolve(&self) -> anyhow::Result<Settings> {
        let entry = match &self.os_cloud {
            Some(name) => cloud_entry(name).await?,
            None => CloudEntry::default(),
        };
        let auth = entry.auth;
        let missing = |what: &str, variable: &str| {
            anyhow::anyhow!("no {what}: give --os-{what}, {variable}, or --os-cloud")
        };
        let auth_type = pick(&self.os_auth_type, entry.auth_type);
        let credentials = match auth_type.as_deref() {
            None | Some("password" | "v3password") => Credentials::Password {
                username: pick(&self.os_username, auth.username)
                    .ok_or_else(|| missing("username", "OS_USERNAME"))?,
                password: pick(&self.os_password, auth.password)
                    .ok_or_else(|| missing("password", "OS_PASSWORD"))?,
            },
            Some("token" | "v3token" | "admin_token" | "token_endpoint") => Credentials::Token(
                pick(&self.os_token, auth.token).ok_or_else(|| missing("token", "OS_TOKEN"))?,
            ),
            Some(other) => bail!("auth type {other:?} is not supported: use password or token"),
        };
        let storage_url = self.os_storage_url.clone();
        let auth_url = pick(&self.os_auth_url, auth.auth_url);
        let needs_identity =
            matches!(credentials, Credentials::Password { .. }) || storage_url.is_none();
        if auth_url.is_none() && needs_identity {
            return Err(missing("auth-url", "OS_AUTH_URL"));
        }
        let project = named(
            (&self.os_project_name, auth.project_name),
            (&self.os_project_id, auth.project_id),
        );
        if project.is_none() && matches!(credentials, Credentials::Password { .. }) {
            return Err(missing("project-name", "OS_PROJECT_NAME"));
        }
        let default_domain = || Named::Id("default".to_owned());
        Ok(Settings {
            auth_url,
            credentials,
            user_domain: named(
                (&self.os_user_domain_name, auth.user_domain_name),
                (&self.os_user_domain_id, auth.user_domain_id),
            )
            .unwrap_or_else(default_domain),
            project,
            project_domain: named(
                (&self.os_project_domain_name, auth.project_domain_name),
                (&self.os_project_domain_id, auth.project_domain_id),
            )
            .unwrap_or_else(default_domain),
            region: pick(&self.os_region_name, entry.region_name),
            interface: pick(&self.os_interface, entry.interface)
                .unwrap_or_else(|| "public".to_owned()),
            cacert: pick(&self.os_cacert, entry.cacert),
            storage_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn flags_win_over_the_file_and_names_over_ids() {
        assert_eq!(
            named((&some("flag"), some("file")), (&None, None)),
            Some(Named::Name("flag".into()))
        );
        assert_eq!(
            named((&None, some("file")), (&some("id"), None)),
            Some(Named::Id("id".into()))
        );
        assert_eq!(
            named((&None, some("file")), (&None, some("file-id"))),
            Some(Named::Name("file".into()))
        );
        assert_eq!(named((&None, None), (&None, None)), None);
    }

    #[test]
    fn clouds_yaml_entries_read_the_openstack_keys() {
        let file: CloudsFile = serde_yaml_ng::from_str(
            "clouds:\n  c:\n    region_name: R\n    cacert: /ca.pem\n    auth_type: token\n    \
             auth:\n      auth_url: http://x/identity/v3\n      token: t\n      \
             project_domain_name: Default\n",
        )
        .unwrap();
        let entry = &file.clouds["c"];
        assert_eq!(entry.region_name.as_deref(), Some("R"));
        assert_eq!(entry.auth.token.as_deref(), Some("t"));
        assert_eq!(entry.auth.project_domain_name.as_deref(), Some("Default"));
    }
}
