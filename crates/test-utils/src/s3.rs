/// The environment variable naming the S3 server tests use (`http://127.0.0.1:PORT`).
/// `scripts/test` starts moto_server and sets it.
pub const S3_ENV: &str = "NEFOS_TEST_S3";

/// A new, empty bucket on the S3 server named by `NEFOS_TEST_S3`: its endpoint (without a
/// trailing slash) and name. The server accepts the credentials `testing`/`testing`.
///
/// Panics when the variable is unset: the S3 half of a suite must not pass by being
/// skipped.
pub async fn s3_bucket() -> (String, String) {
    let endpoint = std::env::var(S3_ENV).unwrap_or_else(|_| {
        panic!(
            "{S3_ENV} is not set: run the tests with scripts/test, which starts a local S3 \
             server (moto_server), or point {S3_ENV} at one (http://127.0.0.1:PORT) that \
             accepts unauthenticated bucket creation"
        )
    });
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let bucket = format!("nefos-test-{}", uuid::Uuid::new_v4().simple());
    // object_store cannot create buckets; moto accepts an unsigned PUT.
    let response = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the S3 server at {endpoint}: {e}"));
    assert!(
        response.status().is_success(),
        "creating bucket {bucket} at {endpoint}: {}",
        response.status()
    );
    (endpoint, bucket)
}
