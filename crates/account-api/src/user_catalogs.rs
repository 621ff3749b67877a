//! `POST /user_catalogs`: display names of ids and ids of display names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a client asks: ids to name, names to resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCatalogsQuery {
    #[serde(default)]
    pub uuids: Vec<String>,
    #[serde(default)]
    pub displaynames: Vec<String>,
}

/// The answer: each known id's name and each known name's id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCatalogs {
    pub uuid_catalog: BTreeMap<String, String>,
    pub displayname_catalog: BTreeMap<String, String>,
}
