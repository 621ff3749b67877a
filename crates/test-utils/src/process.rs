use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `nefos` binary running as a child; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct NefosProcess {
    child: Child,
    /// Base URL the process serves, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// Everything the process printed on stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
}

impl NefosProcess {
    /// Runs `nefos up --no-node --data DATA --listen 127.0.0.1:PORT` (a control plane
    /// without a node agent) and waits until it serves.
    pub fn up(binary: &Path, data: &Path, extra: &[&str]) -> NefosProcess {
        let port = free_port();
        let mut args = Self::up_args(data, port);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::spawn(binary, &args, &format!("http://127.0.0.1:{port}"))
    }

    /// The arguments of `nefos up --no-node --data DATA --listen 127.0.0.1:PORT`.
    pub fn up_args(data: &Path, port: u16) -> Vec<String> {
        vec![
            "up".to_owned(),
            "--no-node".to_owned(),
            "--data".to_owned(),
            data.display().to_string(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
        ]
    }

    /// [`Self::up`] on `port` without waiting for it to serve: for a start that is to fail.
    pub fn up_unchecked(binary: &Path, data: &Path, port: u16) -> NefosProcess {
        let args = Self::up_args(data, port);
        Self::start(binary, &args, &format!("http://127.0.0.1:{port}"))
    }

    /// Runs `binary ARGS` and waits until `url/healthz` answers.
    pub fn spawn(binary: &Path, args: &[String], url: &str) -> NefosProcess {
        let mut process = Self::start(binary, args, url);
        process.wait_healthy(Duration::from_secs(60));
        process
    }

    /// Runs `binary ARGS` without waiting for it to serve: for a process the plain-HTTP
    /// health probe cannot reach (TLS), whose caller polls it itself with [`Self::exited`].
    pub fn start(binary: &Path, args: &[String], url: &str) -> NefosProcess {
        Self::start_command(Self::command(binary, args), url)
    }

    /// The command [`Self::start`] runs, for a test that changes its environment before
    /// passing it to [`Self::start_command`].
    pub fn command(binary: &Path, args: &[String]) -> Command {
        Self::configure(Command::new(binary), args)
    }

    /// [`Self::command`] run inside network namespace `namespace` (see [`crate::Lab`]).
    pub fn command_in(namespace: &str, binary: &Path, args: &[String]) -> Command {
        Self::configure(crate::Lab::command(namespace, binary), args)
    }

    fn configure(mut command: Command, args: &[String]) -> Command {
        command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            // Tests say which guest image a cloud imports (`--guest-image`), if any.
            .env_remove("NEFOS_GUEST_IMAGE");
        command
    }

    /// Runs `command` with its output collected, without waiting for it to serve.
    pub fn start_command(mut command: Command, url: &str) -> NefosProcess {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        NefosProcess {
            child,
            url: url.to_owned(),
            output,
        }
    }

    fn wait_healthy(&mut self, limit: Duration) {
        let started = Instant::now();
        let addr = self.url.trim_start_matches("http://").to_owned();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "nefos exited with {status} before serving:\n{}",
                    self.output()
                );
            }
            if healthz(&addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nefos did not serve within {limit:?}:\n{}", self.output());
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, the way a crash or power cut would end it, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit by itself; its status, or a panic
    /// showing what it printed.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.exited() {
                // The reader threads may still hold the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nefos still runs after {limit:?}:\n{}", self.output());
    }

    /// Waits up to `limit` until the process has printed `needle` (for a process whose
    /// health probe the test cannot reach, in a network namespace), or panics.
    pub fn wait_printed(&mut self, needle: &str, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.output().contains(needle) {
                return;
            }
            if let Some(status) = self.exited() {
                panic!("nefos exited with {status}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "nefos did not print {needle:?} within {limit:?}:\n{}",
            self.output()
        );
    }

    /// Waits until `url/healthz` answers, or panics (for a process from [`Self::start`]).
    pub fn wait_serving(&mut self) {
        self.wait_healthy(Duration::from_secs(60));
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for NefosProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A bare HTTP/1.1 GET of /healthz; true on a 200.
fn healthz(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// The `credentials` file `nefos up` writes: user name → password.
pub fn read_credentials(data: &Path) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(data.join("credentials")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(user, password)| (user.trim().to_owned(), password.trim().to_owned()))
        .collect()
}

/// Where `cargo` put the workspace's binaries (for tests outside the binary's own crate).
pub fn target_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join(name)
}

/// A TOML string literal, for configuration files written by tests.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes `text` to `dir/nefos.toml` and returns the arguments of `nefos serve` with it.
pub fn serve_args(dir: &Path, text: &str) -> Vec<String> {
    let path = dir.join("nefos.toml");
    std::fs::write(&path, text).unwrap();
    vec![
        "serve".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ]
}
