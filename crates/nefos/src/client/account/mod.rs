//! `nefos project …` and `nefos quota …`: Synnefo projects and quotas, through the
//! account API (`/account/v1.0`, declared in `nefos-account-api`), as kamaki's `project`,
//! `membership` and `quota` commands do.

mod projects;
mod quotas;

use anyhow::{Context, anyhow, bail};
use nefos_account_api::ErrorBody;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use projects::{ProjectCommand, run as run_project};
pub use quotas::{QuotaCommand, run as run_quota};

use super::Session;

/// Calls the account API: `route` (a template of `nefos_account_api::paths`) filled with
/// `values`, with `query` and `body`, and reads the answer as `T`.
async fn call<T: DeserializeOwned>(
    session: &Session,
    method: Method,
    route: &str,
    values: &[&str],
    query: &[(&str, &str)],
    body: Option<&(impl Serialize + ?Sized)>,
) -> anyhow::Result<T> {
    let base = session.account_url.as_deref().ok_or_else(|| {
        anyhow!("the cloud's catalog names no account service: log in with an auth URL")
    })?;
    let url = format!("{base}{}", nefos_account_api::paths::fill(route, values));
    let mut request = session.request(method, &url).query(query);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        // Astakos's error body: {"itemNotFound": {"message": …, "code": 404}}.
        let message = serde_json::from_str::<ErrorBody>(&text)
            .ok()
            .and_then(|body| body.0.into_values().next())
            .map_or_else(|| text.trim().to_owned(), |fault| fault.message);
        bail!("{message} ({status})");
    }
    let text = if text.trim().is_empty() {
        "null"
    } else {
        &text
    };
    serde_json::from_str(text)
        .with_context(|| format!("{url} answered {status} with something unexpected"))
}
