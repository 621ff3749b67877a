//! A small client of the compute API (Nova v2.1 at 2.96) for tests that drive servers
//! directly: a fresh connection per call, since the tests kill and restart the control
//! plane under it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::vms::Cloud;

pub struct ComputeApi {
    pub url: String,
    pub token: String,
    pub image: String,
}

/// A call's status and JSON body (`Null` if it had none or did not parse).
pub type Answer = (u16, Value);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

impl ComputeApi {
    /// `user` (of `nefos up`'s credentials) scoped to its own project.
    pub async fn login(cloud: &Cloud, user: &str) -> ComputeApi {
        let password = &nefos_test_utils::read_credentials(cloud.data.path())[user];
        let (token, _) =
            super::token(&client(), &cloud.process.url, user, password, Some(user)).await;
        let images: Value = client()
            .get(format!(
                "{}/image/v2/images?name=nefos-tiny",
                cloud.process.url
            ))
            .header("x-auth-token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ComputeApi {
            url: format!("{}/compute/v2.1", cloud.process.url),
            token,
            image: images["images"][0]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// A call; `Err` when the control plane could not be reached (it may be down).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let mut request = client()
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "compute 2.96");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Creates a tiny server without networks; its id, or the answer.
    pub async fn create(&self, name: &str) -> Result<String, String> {
        let body = json!({"server": {"name": name, "imageRef": self.image, "flavorRef": "6",
                                     "networks": "none"}});
        match self.call("POST", "/servers", Some(body)).await? {
            (202, body) => Ok(body["server"]["id"].as_str().unwrap().to_owned()),
            (status, body) => Err(format!("{status}: {body}")),
        }
    }

    /// The servers of the project, in full.
    pub async fn servers(&self) -> Vec<Value> {
        let (status, body) = self.call("GET", "/servers/detail", None).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["servers"].as_array().unwrap().clone()
    }

    pub async fn server(&self, id: &str) -> Option<Value> {
        match self
            .call("GET", &format!("/servers/{id}"), None)
            .await
            .unwrap()
        {
            (200, body) => Some(body["server"].clone()),
            (404, _) => None,
            (status, body) => panic!("GET server {id}: {status} {body}"),
        }
    }

    /// Waits until `ready` holds of the server (None: it is gone); what it last was.
    pub async fn wait(
        &self,
        id: &str,
        limit: Duration,
        ready: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let started = Instant::now();
        loop {
            let server = self.server(id).await;
            if ready(server.as_ref()) {
                return server;
            }
            assert!(
                started.elapsed() < limit,
                "server {id} never got there: {server:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The usage `GET /limits` reports: instances, cores, RAM.
    pub async fn usage(&self) -> (i64, i64, i64) {
        let (_, limits) = self.call("GET", "/limits", None).await.unwrap();
        let absolute = &limits["limits"]["absolute"];
        let get = |name: &str| absolute[name].as_i64().unwrap();
        (
            get("totalInstancesUsed"),
            get("totalCoresUsed"),
            get("totalRAMUsed"),
        )
    }
}

/// Whether a server (as shown) has settled: no task, and not building.
pub fn settled(server: &Value) -> bool {
    server["OS-EXT-STS:task_state"].is_null() && server["status"] != "BUILD"
}

/// Raises the demo user's compute limits so that the tests meet only what they test.
pub fn generous_quota(cloud: &Cloud) {
    let data = cloud.data.path().to_str().unwrap().to_owned();
    for (resource, value) in [
        ("cyclades.vm", "50"),
        ("cyclades.cpu", "50"),
        ("cyclades.total_cpu", "50"),
        ("cyclades.ram", "64GiB"),
        ("cyclades.total_ram", "64GiB"),
        ("cyclades.disk", "100GiB"),
    ] {
        super::admin_ok(&[
            "quota", "set", "--data", &data, "--user", "demo", resource, value,
        ]);
    }
}
