//! Throttling of failed password logins, per user name and per client address.
//!
//! After `max_failures` failed logins within `window`, further attempts for the same name
//! (or from the same address) are refused without hashing until the window has passed:
//! guessing stays slow, and a flood of failures costs the server next to nothing. Each
//! attempt is counted as a failure when it starts and given back if it succeeds, so a
//! burst of concurrent attempts cannot all pass the check before any has failed. The
//! counters live in each control-plane process (several processes behind a load balancer
//! each allow the budget); they are bounded, so a flood of made-up names cannot grow them
//! without limit. A successful login clears its name's count.
//!
//! A throttled name can lock its owner out for at most one window: that is the price of
//! any lockout (Keystone's too), and why the window is short and both limits configurable.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of the login throttle; a limit of 0 turns that throttle off.
#[derive(Debug, Clone)]
pub struct LoginThrottleConfig {
    /// Failed logins allowed per user name within `window`.
    pub max_failures_per_user: u32,
    /// Failed logins allowed per client address within `window`.
    pub max_failures_per_address: u32,
    pub window: Duration,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            max_failures_per_user: 10,
            max_failures_per_address: 50,
            window: Duration::from_secs(60),
        }
    }
}

/// Keys tracked per kind; past this, old entries are dropped, and if none is old enough
/// new keys go untracked (the bounded hashing still protects the server).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Failure counts of one kind of key.
#[derive(Debug)]
struct Counters<K> {
    limit: u32,
    map: Mutex<HashMap<K, Failures>>,
}

impl<K: Eq + Hash> Counters<K> {
    fn new(limit: u32) -> Self {
        Counters {
            limit,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        // The map holds counters only: after a panic elsewhere it is still usable.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one attempt for `key`, or says how long it must wait if its budget for the
    /// window is spent.
    fn take(&self, key: &K, window: Duration, now: Instant) -> Result<(), Duration>
    where
        K: Clone,
    {
        if self.limit == 0 {
            return Ok(());
        }
        let mut map = self.map();
        if let Some(failures) = map.get_mut(key) {
            let elapsed = now.saturating_duration_since(failures.since);
            if elapsed >= window {
                *failures = Failures {
                    count: 0,
                    since: now,
                };
            } else if failures.count >= self.limit {
                return Err(window - elapsed);
            }
            failures.count = failures.count.saturating_add(1);
            return Ok(());
        }
        if map.len() >= MAX_TRACKED {
            map.retain(|_, f| now.saturating_duration_since(f.since) < window);
            if map.len() >= MAX_TRACKED {
                return Ok(());
            }
        }
        map.insert(
            key.clone(),
            Failures {
                count: 1,
                since: now,
            },
        );
        Ok(())
    }

    /// Gives back an attempt [`Counters::take`] counted (it did not fail).
    fn give_back(&self, key: &K) {
        if let Some(failures) = self.map().get_mut(key) {
            failures.count = failures.count.saturating_sub(1);
        }
    }

    fn clear(&self, key: &K) {
        self.map().remove(key);
    }
}

/// The failed-login counters of one process.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    window: Duration,
    by_user: Counters<String>,
    by_address: Counters<IpAddr>,
}

impl LoginThrottle {
    pub(crate) fn new(config: &LoginThrottleConfig) -> Self {
        LoginThrottle {
            window: config.window,
            by_user: Counters::new(config.max_failures_per_user),
            by_address: Counters::new(config.max_failures_per_address),
        }
    }

    /// User names compare without case, as logins do. Callers refuse names longer than
    /// any user can have before they get here, so keys stay small.
    fn user_key(user: &str) -> String {
        user.to_lowercase()
    }

    /// The key of an address: IPv4 as it is (also when mapped into IPv6), IPv6 by its /64,
    /// the block one client usually holds whole.
    fn address_key(address: IpAddr) -> IpAddr {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }

    /// Counts a login attempt as failed until it succeeds, or says how long it must wait
    /// before it may be tried.
    pub(crate) fn attempt(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        // The address first: a throttled address adds no name to the table.
        let address = address.map(Self::address_key);
        if let Some(address) = address {
            self.by_address.take(&address, self.window, now)?;
        }
        if let Err(wait) = self.by_user.take(&Self::user_key(user), self.window, now) {
            if let Some(address) = address {
                self.by_address.give_back(&address);
            }
            return Err(wait);
        }
        Ok(())
    }

    /// The attempt could not be checked (the server was busy or failed): it counts for
    /// neither the name nor the address.
    pub(crate) fn abandoned(&self, user: &str, address: Option<IpAddr>) {
        self.by_user.give_back(&Self::user_key(user));
        if let Some(address) = address {
            self.by_address.give_back(&Self::address_key(address));
        }
    }

    /// The attempt succeeded: the name's failures are forgotten and the address gets its
    /// attempt back.
    pub(crate) fn succeeded(&self, user: &str, address: Option<IpAddr>) {
        self.by_user.clear(&Self::user_key(user));
        if let Some(address) = address {
            self.by_address.give_back(&Self::address_key(address));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_user: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle::new(&LoginThrottleConfig {
            max_failures_per_user: per_user,
            max_failures_per_address: per_address,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn names_are_throttled_after_their_limit_until_a_success() {
        let t = throttle(3, 0);
        let here: Option<IpAddr> = Some([10, 0, 0, 1].into());
        for _ in 0..3 {
            assert!(t.attempt("Alice", here).is_ok());
        }
        let wait = t.attempt("ALICE", None).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert!(
            t.attempt("bob", here).is_ok(),
            "other names are not affected"
        );
        t.succeeded("alice", here);
        assert!(t.attempt("alice", here).is_ok());
    }

    #[test]
    fn addresses_are_throttled_whatever_the_names() {
        let t = throttle(0, 5);
        let attacker: IpAddr = [192, 0, 2, 7].into();
        for n in 0..5 {
            assert!(t.attempt(&format!("made-up-{n}"), Some(attacker)).is_ok());
        }
        assert!(t.attempt("anyone", Some(attacker)).is_err());
        assert!(t.attempt("anyone", Some([192, 0, 2, 8].into())).is_ok());
        assert!(t.attempt("anyone", None).is_ok());
    }

    #[test]
    fn successes_and_abandoned_attempts_give_their_count_back() {
        let t = throttle(2, 2);
        let office: IpAddr = [192, 0, 2, 9].into();
        for _ in 0..10 {
            assert!(t.attempt("alice", Some(office)).is_ok());
            t.succeeded("alice", Some(office));
            assert!(t.attempt("bob", Some(office)).is_ok());
            t.abandoned("bob", Some(office));
        }
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let t = throttle(0, 2);
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(t.attempt("a", Some(first)).is_ok());
        assert!(t.attempt("b", Some(same_64)).is_ok());
        assert!(t.attempt("c", Some(same_64)).is_err());
        assert!(
            t.attempt("c", Some("2001:db8:1:3::1".parse().unwrap()))
                .is_ok()
        );
        // An IPv4 client seen through an IPv6 socket is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(t.attempt("a", Some(mapped)).is_ok());
        assert!(t.attempt("a", Some([192, 0, 2, 1].into())).is_ok());
        assert!(t.attempt("a", Some([192, 0, 2, 1].into())).is_err());
    }

    #[test]
    fn a_throttled_address_adds_no_names() {
        let t = throttle(10, 1);
        let attacker: IpAddr = [192, 0, 2, 7].into();
        assert!(t.attempt("first", Some(attacker)).is_ok());
        for n in 0..100 {
            assert!(t.attempt(&format!("name-{n}"), Some(attacker)).is_err());
        }
        assert_eq!(t.by_user.map().len(), 1);
    }

    #[test]
    fn a_limit_of_zero_turns_a_throttle_off() {
        let t = throttle(0, 0);
        for _ in 0..1000 {
            assert!(t.attempt("alice", Some([10, 0, 0, 1].into())).is_ok());
        }
    }

    #[test]
    fn the_counters_stay_bounded() {
        let t = throttle(1, 0);
        for n in 0..MAX_TRACKED + 10 {
            assert!(t.attempt(&format!("user-{n}"), None).is_ok());
        }
        assert_eq!(t.by_user.map().len(), MAX_TRACKED);
    }
}
