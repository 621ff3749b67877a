//! Request bodies that arrive too slowly are cut off.
//!
//! A client that opens a request and then sends its body a byte at a time holds a
//! connection, a task and often a partly written upload for as long as it likes; forty of
//! them stayed open indefinitely. Each body is given, as Apache's `mod_reqtimeout` gives
//! it: an idle timeout (no data at all for that long ends it), and after a grace period a
//! minimum average rate. A body that breaks either ends with [`SlowBody`], which the API
//! answers with 408; the upload it fed stores nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use thiserror::Error;
use tokio::time::{Instant, Sleep};

/// How slow a request body may be. The clocks start when the handler first reads the
/// body, so time the server itself takes before reading is not held against the client.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// The longest wait for the next piece of a body (0: no limit).
    pub idle_timeout: Duration,
    /// The average rate a body must keep once `grace` has passed (0: no minimum).
    pub min_bytes_per_second: u64,
    pub grace: Duration,
}

impl Default for BodyPace {
    fn default() -> Self {
        BodyPace {
            idle_timeout: Duration::from_secs(30),
            min_bytes_per_second: 500,
            grace: Duration::from_secs(20),
        }
    }
}

/// A request body ended for arriving too slowly.
#[derive(Debug, Error)]
pub enum SlowBody {
    #[error("no request body data arrived for {seconds} s")]
    Idle { seconds: u64 },
    #[error("the request body arrived at {rate} bytes/s, under the {minimum} bytes/s minimum")]
    TooSlow { rate: u64, minimum: u64 },
}

/// Whether an error from a request body is [`SlowBody`], somewhere in its chain.
pub fn is_slow_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<SlowBody>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A body under a [`BodyPace`].
struct PacedBody {
    inner: Body,
    pace: BodyPace,
    /// When the body was first read; its clocks start then.
    started: Option<Instant>,
    received: u64,
    /// The idle deadline, when there is one.
    idle: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl PacedBody {
    fn new(inner: Body, pace: BodyPace) -> Self {
        PacedBody {
            inner,
            pace,
            started: None,
            received: 0,
            idle: None,
            failed: false,
        }
    }

    /// Starts the clocks at the first read.
    fn start(&mut self, now: Instant) -> Instant {
        if let Some(started) = self.started {
            return started;
        }
        self.started = Some(now);
        if !self.pace.idle_timeout.is_zero() {
            self.idle = Some(Box::pin(tokio::time::sleep_until(
                now + self.pace.idle_timeout,
            )));
        }
        now
    }

    /// The rate so far, if it is under the minimum once the grace period has passed.
    fn too_slow(&self, started: Instant, now: Instant) -> Option<SlowBody> {
        let elapsed = now.saturating_duration_since(started);
        if self.pace.min_bytes_per_second == 0 || elapsed < self.pace.grace {
            return None;
        }
        let rate = self.received / elapsed.as_secs().max(1);
        (rate < self.pace.min_bytes_per_second).then_some(SlowBody::TooSlow {
            rate,
            minimum: self.pace.min_bytes_per_second,
        })
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let started = this.start(Instant::now());
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                if let Some(slow) = this.too_slow(started, now) {
                    this.failed = true;
                    return Poll::Ready(Some(Err(axum::Error::new(slow))));
                }
                if let Some(idle) = &mut this.idle {
                    idle.as_mut().reset(now + this.pace.idle_timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if let Some(idle) = &mut this.idle
                    && idle.as_mut().poll(cx).is_ready()
                {
                    this.failed = true;
                    let seconds = this.pace.idle_timeout.as_secs();
                    return Poll::Ready(Some(Err(axum::Error::new(SlowBody::Idle { seconds }))));
                }
                if let Some(slow) = this.too_slow(started, Instant::now()) {
                    this.failed = true;
                    return Poll::Ready(Some(Err(axum::Error::new(slow))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts every request body under `pace`.
pub(crate) async fn pace_bodies(pace: BodyPace, request: Request, next: Next) -> Response {
    // A request without a body (most GETs and HEADs) has nothing to pace.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let request = request.map(|body| Body::new(PacedBody::new(body, pace)));
    next.run(request).await
}
