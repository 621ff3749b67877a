//! The real `openstack` CLI (python-openstackclient from PyPI), run in a clean environment
//! against a cloud's `clouds.yaml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The variable naming the `openstack` executable; the test command puts it in a venv of
/// the repo's own.
pub const OPENSTACK_ENV: &str = "NEFOS_OPENSTACK_CLI";

fn openstack_cli() -> PathBuf {
    match std::env::var_os(OPENSTACK_ENV) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "NEFOS_OPENSTACK_CLI is not set: run the tests with scripts/test, which installs \
             python-openstackclient in .venv and sets it, or point NEFOS_OPENSTACK_CLI at an \
             `openstack` executable"
        ),
    }
}

/// Runs the CLI in a clean environment: no `OS_*` variables of the caller's, a home of its own
/// (so no `~/.config/openstack` leaks in), and `OS_CLIENT_CONFIG_FILE` = `clouds`.
#[derive(Debug)]
pub struct OpenStack {
    exe: PathBuf,
    home: tempfile::TempDir,
    /// The network namespace the CLI runs in (a test host, see [`crate::Lab`]).
    namespace: Option<String>,
}

impl Default for OpenStack {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenStack {
    pub fn new() -> Self {
        OpenStack {
            exe: openstack_cli(),
            home: tempfile::tempdir().unwrap(),
            namespace: None,
        }
    }

    /// The CLI run inside network namespace `namespace`.
    pub fn in_namespace(namespace: &str) -> Self {
        OpenStack {
            namespace: Some(namespace.to_owned()),
            ..Self::new()
        }
    }

    pub fn run(&self, clouds: &Path, cloud: &str, args: &[&str]) -> Output {
        let mut command = match &self.namespace {
            Some(namespace) => crate::Lab::command(namespace, &self.exe),
            None => Command::new(&self.exe),
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OS_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_CACHE_HOME", self.home.path().join(".cache"))
            .env("OS_CLIENT_CONFIG_FILE", clouds)
            .arg("--os-cloud")
            .arg(cloud)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()))
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, clouds: &Path, cloud: &str, args: &[&str]) -> String {
        let output = self.run(clouds, cloud, args);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "openstack --os-cloud {cloud} {} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs a command with `-f json`, which must succeed, and parses its output.
    pub fn json(&self, clouds: &Path, cloud: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let stdout = self.ok(clouds, cloud, &args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("openstack {args:?} printed no JSON ({e}):\n{stdout}"))
    }
}
