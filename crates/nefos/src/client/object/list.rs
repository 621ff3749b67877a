//! `nefos object list` and `nefos object accounts`.

use reqwest::Method;

use super::output::{Format, Listing};
use super::store::{self, Account};
use crate::client::Session;

/// The containers of an account, or of another account those holding objects it shares
/// with the caller.
pub async fn containers(
    account: &Account<'_>,
    prefix: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let entries = account.listing(None, prefix).await?;
    print!(
        "{}",
        Listing::new(&["name", "count", "bytes"], &entries).render(format)
    );
    Ok(())
}

/// The objects of a container (of another account: those it shares with the caller).
pub async fn objects(
    account: &Account<'_>,
    container: &str,
    prefix: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let entries = account.listing(Some(container), prefix).await?;
    print!(
        "{}",
        Listing::new(&["name", "bytes", "last_modified"], &entries).render(format)
    );
    Ok(())
}

/// The accounts that share objects with the caller (Pithos's `GET /object/v1`).
pub async fn accounts(session: &Session, format: Format) -> anyhow::Result<()> {
    let url = session.storage_root();
    let entries = store::pages(
        || session.request(Method::GET, url),
        None,
        "listing the accounts that share with you",
    )
    .await?;
    print!("{}", Listing::new(&["name"], &entries).render(format));
    Ok(())
}
