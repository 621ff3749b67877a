use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The environment variable naming kamaki 0.16's executable; `scripts/test` installs
/// kamaki in `.venv-kamaki` and sets it.
pub const KAMAKI_ENV: &str = "NEFOS_KAMAKI_CLI";

/// The real kamaki (Synnefo's CLI) set up for one cloud and one token: a configuration
/// file of its own (`KAMAKI_CONFIG`) and a home of its own, both in a temporary directory,
/// so nothing of the caller's `~/.kamakirc` leaks in or is written.
#[derive(Debug)]
pub struct Kamaki {
    exe: PathBuf,
    dir: tempfile::TempDir,
    /// The network namespace it runs in (a test's host), if any.
    namespace: Option<String>,
}

impl Kamaki {
    /// kamaki logging in to `url` (the cloud's base URL) at `/identity/v2.0` with `token`.
    ///
    /// Panics when `NEFOS_KAMAKI_CLI` is unset: the kamaki tests must not pass by being
    /// skipped.
    pub fn new(url: &str, token: &str) -> Kamaki {
        let exe = match std::env::var_os(KAMAKI_ENV) {
            Some(path) => PathBuf::from(path),
            None => panic!(
                "{KAMAKI_ENV} is not set: run the tests with scripts/test, which installs \
                 kamaki 0.16 in .venv-kamaki and sets it, or point {KAMAKI_ENV} at a \
                 `kamaki` executable"
            ),
        };
        let dir = tempfile::tempdir().unwrap();
        let kamaki = Kamaki {
            exe,
            dir,
            namespace: None,
        };
        kamaki.write_config(url, token);
        kamaki
    }

    /// [`Kamaki::new`] run inside network namespace `namespace` (a test's host).
    pub fn in_namespace(namespace: &str, url: &str, token: &str) -> Kamaki {
        Kamaki {
            namespace: Some(namespace.to_owned()),
            ..Kamaki::new(url, token)
        }
    }

    /// The same cloud with another token.
    pub fn with_token(&self, url: &str, token: &str) -> Kamaki {
        let dir = tempfile::tempdir().unwrap();
        let kamaki = Kamaki {
            exe: self.exe.clone(),
            dir,
            namespace: self.namespace.clone(),
        };
        kamaki.write_config(url, token);
        kamaki
    }

    fn write_config(&self, url: &str, token: &str) {
        let dir = self.dir.path();
        let mut global = format!(
            "log_file = {}\nhistory_file = {}\n",
            dir.join("kamaki.log").display(),
            dir.join("kamaki.history").display()
        );
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if bundle.exists() {
            global.push_str(&format!("ca_certs = {}\n", bundle.display()));
        }
        // The first line is how kamaki tells a 0.16 file from one it would offer to convert.
        let text = format!(
            "# Kamaki configuration file v0.16\n[global]\ndefault_cloud = nefos\n{global}\n\
             [cloud \"nefos\"]\nurl = {}/identity/v2.0\ntoken = {token}\n",
            url.trim_end_matches('/')
        );
        std::fs::write(self.config(), text).unwrap();
    }

    /// The configuration file kamaki reads.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("kamakirc")
    }

    /// Runs `kamaki ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = match &self.namespace {
            Some(namespace) => crate::Lab::command(namespace, &self.exe),
            None => Command::new(&self.exe),
        };
        command
            .args(args)
            .env("KAMAKI_CONFIG", self.config())
            .env("HOME", &home)
            .env_remove("KAMAKI_CLOUD")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()))
    }

    /// Runs `kamaki ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kamaki {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        stdout
    }

    /// Runs `kamaki ARGS --output-format json`, which must succeed; its JSON output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--output-format", "json"]);
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("kamaki {args:?} printed no JSON ({e}):\n{stdout}"))
    }
}
