//! `nefos object delete`: objects by name, or a container with everything in it.

use anyhow::bail;
use reqwest::Method;

use super::names;
use super::store::{Account, check};

pub async fn delete(
    account: &Account<'_>,
    container: &str,
    objects: &[String],
    all: bool,
) -> anyhow::Result<()> {
    let container_path = names::container_url(container)?;
    let names: Vec<String> = if all {
        account
            .listing(Some(container), None)
            .await?
            .into_iter()
            .filter_map(|o| o["name"].as_str().map(str::to_owned))
            .collect()
    } else if objects.is_empty() {
        bail!("nothing to delete: name objects, or give --all for the whole container");
    } else {
        objects.to_vec()
    };
    // Every object is tried, so one missing name does not keep the others.
    let mut deleted = 0usize;
    let mut failures = Vec::new();
    for name in &names {
        let result = async {
            let path = names::object_path(container, name)?;
            let response = account.request(Method::DELETE, &path).send().await?;
            check(response, &format!("deleting {container}/{name}")).await
        }
        .await;
        match result {
            Ok(_) => deleted += 1,
            Err(error) => failures.push(error),
        }
    }
    if let Some(first) = failures.first() {
        bail!(
            "deleted {deleted} objects; {} could not be deleted; first: {first:#}",
            failures.len()
        );
    }
    if all {
        let response = account
            .request(Method::DELETE, &container_path)
            .send()
            .await?;
        check(response, &format!("deleting container {container:?}")).await?;
    }
    println!(
        "deleted {deleted} objects{}",
        if all { " and the container" } else { "" }
    );
    Ok(())
}
