//! The network service over a test database on each engine, with the quota engine and
//! identity it needs, for this crate's tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;

use nefos_identity::{AuthContext, Caller, Identity, IdentityConfig};
use nefos_network::{NetworkError, NetworkSettings, Networks, NewNetwork, NewPort, NewSubnet};
use nefos_quota::{CYCLADES_RESOURCES, Quotas};
use nefos_test_utils::TestDatabase;

pub struct Cloud {
    pub label: &'static str,
    pub networks: Networks,
    pub quotas: Quotas,
    pub identity: Identity,
    pub _db: TestDatabase,
}

impl Cloud {
    pub async fn new(t: TestDatabase) -> Cloud {
        let quotas = Quotas::new(t.db.clone());
        quotas.register_resources(CYCLADES_RESOURCES).await.unwrap();
        Cloud {
            label: t.label,
            networks: Networks::new(t.db.clone(), quotas.clone(), NetworkSettings::default()),
            identity: Identity::new(t.db.clone(), IdentityConfig::default()),
            quotas,
            _db: t,
        }
    }

    pub async fn usage(&self, who: &AuthContext, resource: &str) -> i64 {
        let quotas = self
            .quotas
            .user_quotas(Caller::Operator, &who.user_id)
            .await
            .unwrap();
        quotas
            .iter()
            .find(|q| Some(q.project_id.as_str()) == who.project_id())
            .and_then(|q| q.member.get(resource))
            .map_or(0, |h| h.usage)
    }

    pub async fn network(&self, who: &AuthContext, name: &str) -> String {
        let new = NewNetwork {
            name: name.to_owned(),
            ..NewNetwork::default()
        };
        self.networks.create_network(who, new).await.unwrap().id
    }

    pub async fn subnet(&self, who: &AuthContext, network: &str, cidr: &str) -> String {
        let new = NewSubnet {
            network_id: network.to_owned(),
            ip_version: if cidr.contains(':') { 6 } else { 4 },
            cidr: cidr.to_owned(),
            ..NewSubnet::default()
        };
        self.networks.create_subnet(who, new).await.unwrap().id
    }

    pub async fn port(
        &self,
        who: &AuthContext,
        network: &str,
    ) -> Result<nefos_network::Port, NetworkError> {
        let new = NewPort {
            network_id: network.to_owned(),
            ..NewPort::default()
        };
        self.networks.create_port(who, new).await
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
