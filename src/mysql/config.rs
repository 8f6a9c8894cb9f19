//! `[mysql]`: the source database, and its connection pool (sessions in UTC). The password
//! never appears in `Debug`/`Display` output or in errors.

use std::fmt;

use mysql_async::Pool;
use serde::{Deserialize, Serialize};

use super::MysqlError;
use crate::config::ConfigIssue;

/// `[mysql]`: the source database. Only commands that read MySQL (`capture`, `verify`, the
/// data-access layer) require it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port/database`. TLS and other driver options go in URL
    /// parameters (`?require_ssl=true&verify_ca=true`, see mysql_async's `Opts::from_url`).
    pub url: String,
    /// Most connections the pool opens.
    pub pool_max: usize,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            url: String::new(),
            pool_max: 10,
        }
    }
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_max", &self.pool_max)
            .finish()
    }
}

impl fmt::Display for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

/// The URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; the user info at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl MysqlConfig {
    /// Problems with the section as written. An empty URL is not one: only commands that
    /// need MySQL ask for it, through [`MysqlConfig::require`].
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !self.url.is_empty() {
            if let Err(e) = mysql_async::Opts::from_url(&self.url) {
                issues.push(ConfigIssue::new("mysql.url", url_problem(&e)));
            }
        }
        if self.pool_max == 0 {
            issues.push(ConfigIssue::new("mysql.pool_max", "must be > 0"));
        }
        issues
    }

    /// For commands that read MySQL: the URL must be set.
    pub fn require(&self) -> Result<(), ConfigIssue> {
        if self.url.trim().is_empty() {
            return Err(ConfigIssue::new(
                "mysql.url",
                "required by this command: mysql://user:password@host:port/database (or CUTOVER_MYSQL__URL)",
            ));
        }
        Ok(())
    }

    /// A pool whose sessions run in UTC.
    pub fn pool(&self) -> Result<Pool, MysqlError> {
        self.require()
            .map_err(|i| MysqlError::Config(i.to_string()))?;
        let opts = mysql_async::Opts::from_url(&self.url)
            .map_err(|e| MysqlError::Config(format!("mysql.url: {}", url_problem(&e))))?;
        let constraints = mysql_async::PoolConstraints::new(0, self.pool_max.max(1))
            .ok_or_else(|| MysqlError::Config("mysql.pool_max: must be > 0".into()))?;
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .pool_opts(
                // No COM_RESET_CONNECTION (+ setup re-run) on every return to the pool: two
                // round trips per statement for the data-access layer. Nothing here leaves
                // session state behind (transactions always commit or roll back).
                mysql_async::PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            )
            .setup(vec!["SET time_zone = '+00:00'"]);
        Ok(Pool::new(opts))
    }
}

/// A URL error without the URL (mysql_async's messages never echo the password, but say so
/// here rather than rely on it).
fn url_problem(e: &mysql_async::UrlError) -> String {
    use mysql_async::UrlError as U;
    match e {
        U::InvalidParamValue { param, .. } => format!("invalid value for URL parameter `{param}`"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_redaction() {
        assert_eq!(super::super::quote_ident("a`b"), "`a``b`");
        assert_eq!(
            redact_url("mysql://u:s3cret@h:3306/db?x=1"),
            "mysql://u:***@h:3306/db?x=1"
        );
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
        let c = MysqlConfig {
            url: "mysql://u:s3cret@h/db".into(),
            pool_max: 3,
        };
        assert!(!format!("{c:?} {c}").contains("s3cret"));
        assert_eq!(
            MysqlConfig::default().require().unwrap_err().key,
            "mysql.url"
        );
        assert!(MysqlConfig::default().validate().is_empty());
    }
}
