//! Logging in: credentials from flags, `OS_*` variables or a `clouds.yaml` entry, a
//! Keystone v3 token, and the service endpoints from its catalog.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

/// Where and as whom to log in. Flags override `OS_*` variables, which override the
/// `clouds.yaml` entry named by `--os-cloud`.
#[derive(Debug, Clone, Args)]
pub struct CloudArgs {
    /// A cloud of clouds.yaml (`OS_CLIENT_CONFIG_FILE`, ./clouds.yaml, ~/.config/openstack/).
    #[arg(long, env = "OS_CLOUD", global = true)]
    os_cloud: Option<String>,
    #[arg(long, env = "OS_AUTH_URL", global = true)]
    os_auth_url: Option<String>,
    #[arg(long, env = "OS_USERNAME", global = true)]
    os_username: Option<String>,
    #[arg(long, env = "OS_PASSWORD", global = true, hide_env_values = true)]
    os_password: Option<String>,
    #[arg(long, env = "OS_PROJECT_NAME", global = true)]
    os_project_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CloudsFile {
    clouds: BTreeMap<String, CloudEntry>,
}

#[derive(Debug, Deserialize)]
struct CloudEntry {
    auth: CloudAuth,
}

#[derive(Debug, Deserialize)]
struct CloudAuth {
    auth_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    project_name: Option<String>,
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

fn cloud_entry(name: &str) -> anyhow::Result<CloudAuth> {
    for path in clouds_yaml_paths() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let file: CloudsFile = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Some(entry) = file
            .clouds
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
        {
            return Ok(entry.auth);
        }
    }
    bail!("no cloud named {name:?} in any clouds.yaml (set OS_CLIENT_CONFIG_FILE)")
}

/// A logged-in client.
#[derive(Debug, Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub token: String,
    /// The object-store endpoint of the token's project (`…/object/v1/AUTH_<project>`).
    pub object_url: String,
}

impl Session {
    pub async fn login(args: &CloudArgs) -> anyhow::Result<Session> {
        let entry = match &args.os_cloud {
            Some(name) => Some(cloud_entry(name)?),
            None => None,
        };
        let pick = |flag: &Option<String>, from_file: Option<&Option<String>>, what: &str| {
            flag.clone()
                .or_else(|| from_file.and_then(Clone::clone))
                .ok_or_else(|| {
                    anyhow!(
                        "no {what}: give --os-{what}, OS_{}, or --os-cloud",
                        what.to_uppercase().replace('-', "_")
                    )
                })
        };
        let auth_url = pick(
            &args.os_auth_url,
            entry.as_ref().map(|e| &e.auth_url),
            "auth-url",
        )?;
        let username = pick(
            &args.os_username,
            entry.as_ref().map(|e| &e.username),
            "username",
        )?;
        let password = pick(
            &args.os_password,
            entry.as_ref().map(|e| &e.password),
            "password",
        )?;
        let project = pick(
            &args.os_project_name,
            entry.as_ref().map(|e| &e.project_name),
            "project-name",
        )?;
        let http = reqwest::Client::builder()
            .build()
            .context("cannot build an HTTP client")?;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }});
        let url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
        let response = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer: Value = response
            .json()
            .await
            .context("the identity service answered something other than JSON")?;
        let Some(token) = token.filter(|_| status.is_success()) else {
            let message = answer["error"]["message"]
                .as_str()
                .unwrap_or("no reason given");
            bail!("login refused ({status}): {message}");
        };
        let object_url = answer["token"]["catalog"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["type"] == "object-store")
            .and_then(|s| {
                s["endpoints"]
                    .as_array()?
                    .iter()
                    .find(|e| e["interface"] == "public")
            })
            .and_then(|e| e["url"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the cloud's catalog has no object-store endpoint"))?;
        Ok(Session {
            http,
            token,
            object_url,
        })
    }

    /// A request with the session's token.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("X-Auth-Token", &self.token)
    }

    /// The object store's URL above the accounts (`…/object/v1`).
    pub fn storage_root(&self) -> &str {
        let account_url = self.object_url.trim_end_matches('/');
        account_url
            .rsplit_once('/')
            .map_or(account_url, |(root, _)| root)
    }
}
