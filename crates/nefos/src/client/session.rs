//! Logging in: a Keystone v3 token (from a password, or from a token the user holds) and
//! the endpoints of its catalog (object store, image service, account service), or the
//! storage URL the user gave.

use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::settings::{CloudArgs, Credentials, Named, Settings};

/// A logged-in client.
#[derive(Debug, Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub token: String,
    /// The object-store endpoint of the token's project (`…/object/v1/AUTH_<project>`).
    pub object_url: String,
    /// The account service's endpoint (`…/account/v1.0`), when the login had a catalog.
    pub account_url: Option<String>,
    /// The image service's endpoint (`…/image`, Glance's root), when the login had a
    /// catalog.
    pub image_url: Option<String>,
    /// The compute service's endpoint (`…/compute/v2.1`), when the login had a catalog.
    pub compute_url: Option<String>,
    /// Who the token belongs to, when the login said.
    pub user_id: Option<String>,
    /// The project the token is scoped to: the login's answer, or the `AUTH_<project>` of
    /// a storage URL given without one.
    pub project_id: Option<String>,
}

/// `{"name": …}` or `{"id": …}`, as Keystone takes projects and domains.
fn reference(named: &Named) -> Value {
    match named {
        Named::Name(name) => json!({ "name": name }),
        Named::Id(id) => json!({ "id": id }),
    }
}

/// An HTTP client that also trusts the certificate authorities of `OS_CACERT`.
async fn http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = &settings.cacert {
        let pem = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read the CA certificates {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
        if certificates.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("cannot build an HTTP client")
}

impl Session {
    pub async fn login(args: &CloudArgs) -> anyhow::Result<Session> {
        let settings = args.resolve().await?;
        let http = http_client(&settings).await?;
        if let (Credentials::Token(token), Some(storage_url)) =
            (&settings.credentials, &settings.storage_url)
        {
            // The swift CLI's way: the user already holds everything a request needs.
            let object_url = storage_url.trim_end_matches('/').to_owned();
            return Ok(Session {
                http,
                token: token.clone(),
                project_id: project_of_account(&object_url),
                object_url,
                account_url: None,
                image_url: None,
                compute_url: None,
                user_id: None,
            });
        }
        let auth_url = settings
            .auth_url
            .as_deref()
            .ok_or_else(|| anyhow!("no auth-url: give --os-auth-url or OS_AUTH_URL"))?;
        let tokens_url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
        let (token, answer) = match (&settings.credentials, &settings.project) {
            (Credentials::Token(token), None) => {
                // An unscoped request would lose the token's project: ask what it grants.
                let request = http
                    .get(&tokens_url)
                    .header("X-Auth-Token", token)
                    .header("X-Subject-Token", token);
                (
                    token.clone(),
                    identity_answer(request, &tokens_url).await?.1,
                )
            }
            (credentials, project) => {
                let request = http.post(&tokens_url).json(&token_request(
                    credentials,
                    &settings.user_domain,
                    project.as_ref(),
                    &settings.project_domain,
                ));
                let (token, answer) = identity_answer(request, &tokens_url).await?;
                let token = token.ok_or_else(|| anyhow!("the identity service issued no token"))?;
                (token, answer)
            }
        };
        let region = settings.region.as_deref();
        let object_url = match &settings.storage_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => endpoint(&answer, "object-store", region, &settings.interface)?,
        };
        let account_url = endpoint(
            &answer,
            nefos_account_api::CATALOG_TYPE,
            region,
            &settings.interface,
        )
        .ok();
        let image_url = endpoint(
            &answer,
            nefos_image_api::CATALOG_TYPE,
            region,
            &settings.interface,
        )
        .ok();
        let compute_url = endpoint(
            &answer,
            nefos_compute_api::CATALOG_TYPE,
            region,
            &settings.interface,
        )
        .ok();
        let user_id = answer["token"]["user"]["id"].as_str().map(str::to_owned);
        let project_id = answer["token"]["project"]["id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| project_of_account(&object_url));
        Ok(Session {
            http,
            token,
            object_url,
            account_url,
            image_url,
            compute_url,
            user_id,
            project_id,
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

/// The project of an object-store account URL (`…/AUTH_<project>`).
fn project_of_account(account_url: &str) -> Option<String> {
    account_url
        .trim_end_matches('/')
        .rsplit_once('/')
        .and_then(|(_, account)| account.strip_prefix("AUTH_"))
        .filter(|project| !project.is_empty())
        .map(str::to_owned)
}

/// The body of `POST /auth/tokens`.
fn token_request(
    credentials: &Credentials,
    user_domain: &Named,
    project: Option<&Named>,
    project_domain: &Named,
) -> Value {
    let identity = match credentials {
        Credentials::Password { username, password } => json!({
            "methods": ["password"],
            "password": {"user": {
                "name": username, "domain": reference(user_domain), "password": password}},
        }),
        Credentials::Token(token) => json!({"methods": ["token"], "token": {"id": token}}),
    };
    let mut body = json!({"auth": {"identity": identity}});
    if let Some(project) = project {
        let mut scope = reference(project);
        if matches!(project, Named::Name(_)) {
            scope["domain"] = reference(project_domain);
        }
        body["auth"]["scope"] = json!({ "project": scope });
    }
    body
}

/// Sends a token request; the `X-Subject-Token` and the JSON body of a success.
async fn identity_answer(
    request: reqwest::RequestBuilder,
    url: &str,
) -> anyhow::Result<(Option<String>, Value)> {
    let response = request
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
        .with_context(|| format!("{url} answered {status} with something other than JSON"))?;
    if !status.is_success() {
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        if status == StatusCode::NOT_FOUND {
            bail!("login refused ({status}): {message} (is the token still valid?)");
        }
        bail!("login refused ({status}): {message}");
    }
    Ok((token, answer))
}

/// The endpoint of a service type in a token's catalog, in `region` if given, on
/// `interface`.
fn endpoint(
    answer: &Value,
    service_type: &str,
    region: Option<&str>,
    interface: &str,
) -> anyhow::Result<String> {
    let endpoints: Vec<&Value> = answer["token"]["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == service_type)
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .filter(|e| e["interface"] == interface)
        .collect();
    let in_region = |e: &&&Value| {
        region.is_none_or(|r| e["region_id"].as_str() == Some(r) || e["region"].as_str() == Some(r))
    };
    if let Some(url) = endpoints
        .iter()
        .find(in_region)
        .and_then(|e| e["url"].as_str())
    {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    match region {
        Some(region) if !endpoints.is_empty() => {
            let mut regions: Vec<&str> = endpoints
                .iter()
                .filter_map(|e| e["region_id"].as_str().or(e["region"].as_str()))
                .collect();
            regions.sort_unstable();
            regions.dedup();
            bail!(
                "the cloud's catalog has no {service_type} endpoint in region {region:?}; it has {}",
                regions.join(", ")
            )
        }
        _ => bail!("the cloud's catalog has no {interface} {service_type} endpoint"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [
                {"interface": "public", "region_id": "A", "url": "http://id"}]},
            {"type": "object-store", "endpoints": [
                {"interface": "internal", "region_id": "A", "url": "http://a-internal/"},
                {"interface": "public", "region_id": "A", "url": "http://a/"},
                {"interface": "public", "region": "B", "url": "http://b"}]},
        ]}})
    }

    #[test]
    fn endpoints_are_chosen_by_region_and_interface() {
        assert_eq!(
            endpoint(&answer(), "object-store", None, "public").unwrap(),
            "http://a"
        );
        assert_eq!(
            endpoint(&answer(), "object-store", Some("B"), "public").unwrap(),
            "http://b"
        );
        assert_eq!(
            endpoint(&answer(), "object-store", Some("A"), "internal").unwrap(),
            "http://a-internal"
        );
        let error = endpoint(&answer(), "object-store", Some("C"), "public").unwrap_err();
        assert!(error.to_string().contains("it has A, B"), "{error}");
        assert!(endpoint(&answer(), "object-store", None, "admin").is_err());
    }

    #[test]
    fn accounts_name_their_project() {
        assert_eq!(
            project_of_account("http://c/object/v1/AUTH_p1/").as_deref(),
            Some("p1")
        );
        assert_eq!(project_of_account("http://c/object/v1/p1"), None);
        assert_eq!(project_of_account("http://c/object/v1/AUTH_"), None);
    }

    #[test]
    fn token_requests_name_domains_and_scope() {
        let password = Credentials::Password {
            username: "u".into(),
            password: "p".into(),
        };
        let body = token_request(
            &password,
            &Named::Name("Default".into()),
            Some(&Named::Name("proj".into())),
            &Named::Id("default".into()),
        );
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"],
            json!({"name": "Default"})
        );
        assert_eq!(
            body["auth"]["scope"],
            json!({"project": {"name": "proj", "domain": {"id": "default"}}})
        );
        let body = token_request(
            &Credentials::Token("t".into()),
            &Named::Id("default".into()),
            Some(&Named::Id("p1".into())),
            &Named::Id("default".into()),
        );
        assert_eq!(body["auth"]["identity"]["token"]["id"], "t");
        assert_eq!(body["auth"]["scope"], json!({"project": {"id": "p1"}}));
    }
}
