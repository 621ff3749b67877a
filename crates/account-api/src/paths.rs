//! The routes of the account API, relative to [`crate::PREFIX`], in axum's template
//! syntax (`{name}` is a path parameter). A client fills the parameters in with
//! [`fill`].

/// `GET`: the caller's quotas in every project it belongs to.
pub const QUOTAS: &str = "/quotas";
/// `GET` (administrators): every user's quotas; `?user=a,b&project=p,q`.
pub const SERVICE_QUOTAS: &str = "/service_quotas";
/// `GET` (administrators): every project's own quotas; `?project=p,q`.
pub const SERVICE_PROJECT_QUOTAS: &str = "/service_project_quotas";
/// `GET`: the resources quotas count.
pub const RESOURCES: &str = "/resources";
/// `GET` (administrators): the caller's pending commissions; `POST`: issue one.
pub const COMMISSIONS: &str = "/commissions";
/// `POST` (administrators): accept and reject several commissions.
pub const COMMISSIONS_ACTION: &str = "/commissions/action";
/// `GET` (administrators): one pending commission.
pub const COMMISSION: &str = "/commissions/{serial}";
/// `POST` (administrators): accept or reject one commission.
pub const COMMISSION_ACTION: &str = "/commissions/{serial}/action";
/// `GET`: projects (`?state=&owner=&name=&mode=`); `POST`: apply for a new one.
pub const PROJECTS: &str = "/projects";
/// `GET`: one project; `PUT` (Astakos) or `POST`: apply to change it.
pub const PROJECT: &str = "/projects/{project_id}";
/// `POST`: act on a project or on its pending application.
pub const PROJECT_ACTION: &str = "/projects/{project_id}/action";
/// `GET`: memberships (`?project=`); `POST`: join, or enroll a user.
pub const MEMBERSHIPS: &str = "/projects/memberships";
/// `GET`: one membership.
pub const MEMBERSHIP: &str = "/projects/memberships/{membership_id}";
/// `POST`: act on a membership.
pub const MEMBERSHIP_ACTION: &str = "/projects/memberships/{membership_id}/action";
/// `GET`: project applications (`?project=`), as Astakos before 0.15 served them.
pub const APPLICATIONS: &str = "/projects/apps";
/// `GET`: one project application.
pub const APPLICATION: &str = "/projects/apps/{application_id}";

/// `POST`: user names of ids and ids of user names (Astakos's user catalogs).
pub const USER_CATALOGS: &str = "/user_catalogs";

/// A route with its parameters replaced, in order, by `values` (percent-encoding is the
/// caller's: nefos's ids never need it).
pub fn fill(route: &str, values: &[&str]) -> String {
    let mut path = String::with_capacity(route.len());
    let mut rest = route;
    let mut values = values.iter();
    while let Some(start) = rest.find('{') {
        path.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        path.push_str(values.next().copied().unwrap_or(""));
        rest = &rest[start + end + 1..];
    }
    path.push_str(rest);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_parameters_in_order() {
        assert_eq!(fill(COMMISSION_ACTION, &["57"]), "/commissions/57/action");
        assert_eq!(fill(PROJECT, &["abc"]), "/projects/abc");
        assert_eq!(fill(QUOTAS, &[]), "/quotas");
    }
}
