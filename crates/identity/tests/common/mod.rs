//! Helpers shared by the identity integration tests. Each test file uses a different subset.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::time::Duration;

use nefos_identity::{
    Caller, Identity, IdentityConfig, IdentityError, IssuedToken, NewProject, NewUser,
    PasswordCredentials, Project, Scope, User, UserRef,
};
use nefos_test_utils::TestDatabase;
use sha2::{Digest, Sha256};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// Asserts that `$result` is an error matching `$pattern` and returns the error; the message
/// names the backend (`$label`) and what came back instead.
#[allow(unused_macros)]
macro_rules! assert_err {
    ($label:expr, $result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err(error) if matches!(error, $pattern) => error,
            other => panic!(
                "{}: expected Err({}), got {:?}",
                $label,
                stringify!($pattern),
                other
            ),
        }
    };
}

/// `unwrap` that names the backend when it fails.
pub trait Must<T> {
    fn must(self, label: &str) -> T;
}

impl<T, E: Debug> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self, label: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{label}: unexpected error {error:?}"),
        }
    }
}

/// An identity service on one test database, with the backend's label for messages.
#[derive(Debug)]
pub struct Cloud {
    pub label: &'static str,
    pub identity: Identity,
}

impl Cloud {
    /// The identity service with the default configuration.
    pub fn new(t: &TestDatabase) -> Self {
        Cloud::with_ttl(t, IdentityConfig::default().token_ttl)
    }

    /// The identity service issuing tokens that live `ttl`.
    pub fn with_ttl(t: &TestDatabase, ttl: Duration) -> Self {
        Cloud {
            label: t.label,
            identity: Identity::new(
                t.db.clone(),
                IdentityConfig {
                    token_ttl: ttl,
                    ..IdentityConfig::default()
                },
            ),
        }
    }

    /// Creates an enabled user named `name` with [`PASSWORD`], as the operator.
    pub async fn add_user(&self, name: &str) -> User {
        self.identity
            .create_user(Caller::Operator, new_user(name))
            .await
            .must(self.label)
    }

    /// Creates the cloud administrator `admin`, whose base project is the system project.
    pub async fn add_admin(&self) -> User {
        self.identity
            .create_admin_user(new_user("admin"))
            .await
            .must(self.label)
    }

    /// Creates an enabled regular project, as the operator.
    pub async fn add_project(&self, name: &str) -> Project {
        let new = NewProject {
            name: name.to_owned(),
            description: format!("project {name}"),
            enabled: true,
        };
        self.identity
            .create_project(Caller::Operator, new)
            .await
            .must(self.label)
    }

    /// Authenticates `name` with `password`.
    pub async fn try_login(
        &self,
        name: &str,
        password: &str,
        scope: Scope,
    ) -> Result<IssuedToken, IdentityError> {
        let credentials = PasswordCredentials {
            user: UserRef::Name(name.to_owned()),
            password: password.to_owned(),
        };
        self.identity
            .authenticate_password(credentials, scope)
            .await
    }

    /// Authenticates `name` with [`PASSWORD`]; panics on failure.
    pub async fn login(&self, name: &str, scope: Scope) -> IssuedToken {
        self.try_login(name, PASSWORD, scope).await.must(self.label)
    }

    /// A token of `user` scoped to its base project.
    pub async fn base_login(&self, user: &User) -> IssuedToken {
        self.login(&user.name, Scope::ProjectId(user.base_project_id.clone()))
            .await
    }

    /// A cloud administrator's token: the `admin` user scoped to the system project.
    pub async fn admin_login(&self) -> IssuedToken {
        let token = self
            .login("admin", Scope::ProjectName("admin".to_owned()))
            .await;
        assert!(
            token.context.is_cloud_admin(),
            "{}: {:?}",
            self.label,
            token.context
        );
        token
    }

    /// Whether `token` currently validates.
    pub async fn is_valid(&self, token: &IssuedToken) -> bool {
        match self.identity.validate(&token.token).await {
            Ok(_) => true,
            Err(IdentityError::Unauthorized { .. }) => false,
            Err(other) => panic!("{}: validating a token failed: {other:?}", self.label),
        }
    }

    /// Whether the database still holds a row for `token` (revoked or not).
    pub async fn token_is_stored(&self, token: &IssuedToken) -> bool {
        let hash = hex::encode(Sha256::digest(token.token.as_bytes()));
        nefos_db::identity::lookup_token(self.identity.database().pool(), &hash)
            .await
            .must(self.label)
            .is_some()
    }
}

/// An enabled user named `name` with an address and [`PASSWORD`].
pub fn new_user(name: &str) -> NewUser {
    NewUser {
        name: name.to_owned(),
        email: Some(format!("{name}@example.org")),
        password: Some(PASSWORD.to_owned()),
        enabled: true,
    }
}
