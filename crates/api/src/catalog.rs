//! The service catalog: every service nefos serves, with its public endpoint.

/// One catalog entry.
#[derive(Debug, Clone)]
pub struct CatalogService {
    /// OpenStack service type (`identity`, `object-store`, …).
    pub service_type: &'static str,
    /// Service name as OpenStack deployments name them (`keystone`, `swift`, …).
    pub name: &'static str,
    /// The endpoint path under the public URL; `{project_id}` stands for the token's
    /// project, and a service whose path has it is listed only in project-scoped tokens.
    pub path: &'static str,
    /// The API version Synnefo's catalog advertises for it.
    pub version: &'static str,
    /// The endpoint path in Synnefo's catalog, when it differs (kamaki names the account
    /// in the object store's paths itself).
    pub synnefo_path: Option<&'static str>,
}

/// The region every endpoint is in.
pub const REGION: &str = "RegionOne";

/// The services of this cloud, resolved against its public URL.
#[derive(Debug, Clone)]
pub struct Catalog {
    public_url: String,
    services: Vec<CatalogService>,
}

impl Catalog {
    /// The catalog of the services this build serves.
    pub fn new(public_url: &str) -> Self {
        Catalog {
            public_url: public_url.trim_end_matches('/').to_owned(),
            services: vec![
                CatalogService {
                    service_type: "identity",
                    name: "keystone",
                    path: "/identity/v3",
                    version: "v3.14",
                    synnefo_path: None,
                },
                CatalogService {
                    service_type: "object-store",
                    name: "swift",
                    path: "/object/v1/AUTH_{project_id}",
                    version: "v1",
                    synnefo_path: Some("/object/v1"),
                },
                // Glance v2, whose clients discover the version at the root; kamaki (the
                // Synnefo catalog) adds Plankton's `/v1.0` to the same URL itself.
                CatalogService {
                    service_type: nefos_image_api::CATALOG_TYPE,
                    name: nefos_image_api::CATALOG_NAME,
                    path: nefos_image_api::PREFIX,
                    version: "v1.0",
                    synnefo_path: None,
                },
                // Nova v2.1; its clients discover microversions at the compute root.
                CatalogService {
                    service_type: nefos_compute_api::CATALOG_TYPE,
                    name: nefos_compute_api::CATALOG_NAME,
                    path: "/compute/v2.1",
                    version: "v2.0",
                    // kamaki reads Cyclades' shapes, served beside Nova's.
                    synnefo_path: Some("/compute/v2.0"),
                },
                // Neutron v2.0; its clients find `/v2.0` from the versions at its root.
                CatalogService {
                    service_type: nefos_network_api::CATALOG_TYPE,
                    name: nefos_network_api::CATALOG_NAME,
                    path: nefos_network_api::PREFIX,
                    version: "v2.0",
                    // kamaki reads Synnefo's shapes, served beside Neutron's.
                    synnefo_path: Some(nefos_network_api::cyclades::CATALOG_PATH),
                },
                // Synnefo's account API; astakosclient finds it by this name and version.
                CatalogService {
                    service_type: nefos_account_api::CATALOG_TYPE,
                    name: nefos_account_api::CATALOG_NAME,
                    path: nefos_account_api::PREFIX,
                    version: nefos_account_api::VERSION,
                    synnefo_path: None,
                },
            ],
        }
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn services(&self) -> &[CatalogService] {
        &self.services
    }

    /// The public URL of a service for a project; `None` for a per-project service when
    /// there is no project.
    pub fn endpoint(&self, service: &CatalogService, project_id: Option<&str>) -> Option<String> {
        let path = if service.path.contains("{project_id}") {
            service.path.replace("{project_id}", project_id?)
        } else {
            service.path.to_owned()
        };
        Some(format!("{}{path}", self.public_url))
    }

    /// The catalog in Keystone v3's token shape.
    pub fn to_v3(&self, project_id: Option<&str>) -> serde_json::Value {
        let entries: Vec<_> = self
            .services
            .iter()
            .filter_map(|s| Some((s, self.endpoint(s, project_id)?)))
            .map(|(s, url)| {
                serde_json::json!({
                    "id": s.service_type,
                    "type": s.service_type,
                    "name": s.name,
                    "endpoints": [{
                        "id": format!("{}-public", s.service_type),
                        "interface": "public",
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }],
                })
            })
            .collect();
        serde_json::Value::Array(entries)
    }

    /// The catalog in the shape Synnefo's `/identity/v2.0/tokens` gives kamaki. Every
    /// endpoint carries Synnefo's `SNF:uiURL`, which astakosclient requires of the account
    /// service's: nefos has no web UI yet, so it is the cloud's base URL (astakosclient
    /// only reads it for `kamaki service list`, which nefos does not serve).
    pub fn to_synnefo_v2(&self, project_id: Option<&str>) -> serde_json::Value {
        let entries: Vec<_> = self
            .services
            .iter()
            .filter_map(|s| {
                let url = match s.synnefo_path {
                    Some(path) => format!("{}{path}", self.public_url),
                    None => self.endpoint(s, project_id)?,
                };
                Some((s, url))
            })
            .map(|(s, url)| {
                serde_json::json!({
                    "name": s.name,
                    "type": s.service_type,
                    "endpoints_links": [],
                    "endpoints": [{
                        "region": REGION,
                        "versionId": s.version,
                        "publicURL": url,
                        "SNF:uiURL": self.public_url,
                    }],
                })
            })
            .collect();
        serde_json::Value::Array(entries)
    }
}
