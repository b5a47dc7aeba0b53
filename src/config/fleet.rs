//! The `[fleet]` section: the central PostgreSQL store every instance ships its record to.

use super::read::section;
use super::{require, Problem};

/// The `[fleet]` section of the configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// PostgreSQL connection URL (`postgres://user:password@host:port/database`); empty: no
    /// fleet store, the instance keeps its record to itself.
    pub postgres: String,
    /// This instance's name in the fleet, unique among the instances shipping to one
    /// PostgreSQL; empty: the machine's host name (a pod's name in Kubernetes).
    pub instance: String,
    /// The site this instance serves, shared by the replicas of one site; empty: `evidence.site`.
    pub site: String,
    /// Rows shipped in one PostgreSQL transaction at most.
    pub batch: usize,
    /// Milliseconds between shipping rounds when the instance has nothing new to ship.
    pub interval_ms: u64,
    /// Seconds between runs of the fleet detector (over the central store).
    pub detect_interval_secs: u64,
    /// Seconds the shipper waits for PostgreSQL (connect, one statement) before it counts as
    /// away; shipping then retries with backoff up to this many seconds apart.
    pub timeout_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            postgres: String::new(),
            instance: String::new(),
            site: String::new(),
            batch: 2000,
            interval_ms: 200,
            detect_interval_secs: 10,
            timeout_secs: 10,
        }
    }
}

section!(FleetConfig {
    postgres,
    instance,
    site,
    batch,
    interval_ms,
    detect_interval_secs,
    timeout_secs,
});

impl FleetConfig {
    /// Whether a fleet store is configured.
    pub fn enabled(&self) -> bool {
        !self.postgres.is_empty()
    }

    pub(super) fn check(&self, p: &mut Vec<Problem>) {
        let url = &self.postgres;
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !url.is_empty() && !postgres {
            p.push(Problem::text(
                "fleet.postgres",
                self.masked_url(),
                "not a PostgreSQL URL",
                "write postgres://user:password@host:5432/database",
            ));
        }
        require(
            p,
            (1..=100_000).contains(&self.batch),
            "fleet.batch",
            self.batch,
            "use 1 to 100000",
        );
        require(
            p,
            self.interval_ms >= 10,
            "fleet.interval_ms",
            self.interval_ms,
            "use 10 or more",
        );
        require(
            p,
            self.detect_interval_secs >= 1,
            "fleet.detect_interval_secs",
            self.detect_interval_secs,
            "use 1 or more",
        );
        require(
            p,
            self.timeout_secs >= 1,
            "fleet.timeout_secs",
            self.timeout_secs,
            "use 1 or more",
        );
        if self.instance.len() > 200 || self.instance.chars().any(char::is_control) {
            p.push(Problem::text(
                "fleet.instance",
                "…",
                "too long or holds control characters",
                "use a short name such as the pod's or the host's",
            ));
        }
    }

    /// This instance's name: `instance`, else the host name (a pod's name in Kubernetes).
    pub fn instance_name(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "faceprobe".to_string())
    }

    /// The URL with its password replaced by `***`: what may be shown.
    pub fn masked_url(&self) -> String {
        mask_password(&self.postgres)
    }
}

/// A PostgreSQL URL with its password (and any `password=` parameter) replaced by `***`.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.find("password=") {
        Some(i) => {
            let after = &tail[i + "password=".len()..];
            let stop = after.find('&').unwrap_or(after.len());
            format!("{}password=***{}", &tail[..i], &after[stop..])
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_wherever_the_url_holds_them() {
        assert_eq!(
            mask_password("postgres://fp:s3cret@db:5432/fleet"),
            "postgres://fp:***@db:5432/fleet"
        );
        assert_eq!(
            mask_password("postgres://db/fleet?user=fp&password=s3cret&sslmode=require"),
            "postgres://db/fleet?user=fp&password=***&sslmode=require"
        );
        assert_eq!(
            mask_password("postgres://fp@db/fleet"),
            "postgres://fp@db/fleet"
        );
    }
}
