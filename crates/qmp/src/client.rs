use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::{QmpCommand, QmpError};

/// An asynchronous QMP event, such as `SHUTDOWN`, `RESET` or `JOB_STATUS_CHANGE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

type Reply = Result<Value, (String, String)>;
type Pending = Arc<Mutex<PendingReplies>>;

/// Callers waiting for replies, by command id. `closed` is set when the reader stops, so a
/// command sent after that fails at once instead of waiting for its timeout.
#[derive(Debug, Default)]
struct PendingReplies {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    closed: bool,
}

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    timeout: Duration,
    reader: JoinHandle<()>,
}

/// Events kept for a subscriber that lags; older ones are dropped for it.
const EVENT_BACKLOG: usize = 256;

impl Qmp {
    /// Connects to the socket at `path`, reads the greeting and enters command mode. Every
    /// command, and the handshake, must be answered within `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.to_owned(),
                source,
            })?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let greeting = tokio::time::timeout(timeout, read_message(&mut lines))
            .await
            .map_err(|_| QmpError::Timeout {
                command: "greeting",
                timeout,
            })??;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol {
                line: greeting.to_string(),
            });
        }
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let reader = tokio::spawn(read_loop(lines, pending.clone(), events.clone()));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            events,
            next_id: AtomicU64::new(1),
            timeout,
            reader,
        };
        qmp.call("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Events from now on. Subscribe before sending the command whose events matter: an
    /// event may arrive before that command's reply.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs a typed command and decodes its reply.
    pub async fn execute<C: QmpCommand>(&self, command: &C) -> Result<C::Reply, QmpError> {
        let arguments = serde_json::to_value(command).map_err(|source| QmpError::Encode {
            command: C::NAME,
            source,
        })?;
        let arguments = match arguments {
            Value::Null => None,
            Value::Object(map) if map.is_empty() => None,
            other => Some(other),
        };
        let reply = self.call(C::NAME, arguments).await?;
        serde_json::from_value(reply).map_err(|source| QmpError::Decode {
            command: C::NAME,
            source,
        })
    }

    /// Runs `name` with raw JSON `arguments` and returns the `return` value.
    pub async fn call(
        &self,
        name: &'static str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.closed {
                return Err(QmpError::Disconnected);
            }
            pending.waiting.insert(id, tx);
        }
        let mut message = json!({ "execute": name, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        let sent = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(line.as_bytes()).await?;
            writer.flush().await
        };
        let outcome = tokio::time::timeout(self.timeout, async {
            sent.await.map_err(QmpError::Io)?;
            rx.await.map_err(|_| QmpError::Disconnected)
        })
        .await;
        // Whatever happened, this id is no longer awaited.
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&id);
        match outcome {
            Err(_) => Err(QmpError::Timeout {
                command: name,
                timeout: self.timeout,
            }),
            Ok(Err(error)) => Err(error),
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((class, desc)))) => Err(QmpError::Command {
                command: name,
                class,
                desc,
            }),
        }
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_message(lines: &mut BufReader<OwnedReadHalf>) -> Result<Value, QmpError> {
    let mut line = String::new();
    let read = lines.read_line(&mut line).await.map_err(QmpError::Io)?;
    if read == 0 {
        return Err(QmpError::Disconnected);
    }
    serde_json::from_str(&line).map_err(|_| QmpError::Protocol {
        line: line.trim_end().to_owned(),
    })
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    class: String,
    desc: String,
}

async fn read_loop(
    mut lines: BufReader<OwnedReadHalf>,
    pending: Pending,
    events: broadcast::Sender<Event>,
) {
    loop {
        let message = match read_message(&mut lines).await {
            Ok(message) => message,
            Err(QmpError::Protocol { line }) => {
                tracing::warn!(%line, "ignoring a line that is not QMP");
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "QMP connection ended");
                break;
            }
        };
        if let Some(name) = message.get("event").and_then(Value::as_str) {
            let data = message.get("data").cloned().unwrap_or(Value::Null);
            // No subscriber is not an error: most events interest nobody.
            let _ = events.send(Event {
                name: name.to_owned(),
                data,
            });
            continue;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            tracing::warn!(%message, "QMP reply without an id");
            continue;
        };
        let reply = if let Some(error) = message.get("error") {
            match ErrorBody::deserialize(error) {
                Ok(body) => Err((body.class, body.desc)),
                Err(_) => Err(("GenericError".to_owned(), error.to_string())),
            }
        } else {
            Ok(message.get("return").cloned().unwrap_or(Value::Null))
        };
        let waiter = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waiting
            .remove(&id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply);
        }
    }
    let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
    pending.closed = true;
    // Dropping the senders wakes every waiter with "disconnected".
    pending.waiting.clear();
}
