//! Which hosts `http.request` steps may reach (`--http-allowed-hosts`), checked before every
//! request and every redirect, so workflow parameters cannot point a step at, say, a cloud
//! metadata address or the Kubernetes API when the operator has said where steps may go.

use std::fmt;

use reqwest::Url;

/// Host patterns an `http.request` may call; no patterns means any host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    patterns: Vec<HostPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host.
    Any,
    /// `api.example.com`, `10.0.0.7`, `[fd00::1]`.
    Exact(String),
    /// `*.svc.cluster.local`: any host ending in `.svc.cluster.local` (not the bare suffix).
    Subdomain(String),
}

impl EgressPolicy {
    /// Any host (the default).
    pub fn any() -> EgressPolicy {
        EgressPolicy::default()
    }

    /// Parses patterns: `host`, `*.domain` or `*`. The error names the bad pattern.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<EgressPolicy, String> {
        let mut out = Vec::new();
        for raw in patterns {
            let text = raw.as_ref().trim().to_ascii_lowercase();
            if text.is_empty() {
                continue;
            }
            let pattern = if text == "*" {
                HostPattern::Any
            } else if let Some(domain) = text.strip_prefix("*.") {
                check_host(domain, raw.as_ref())?;
                HostPattern::Subdomain(format!(".{domain}"))
            } else {
                check_host(&text, raw.as_ref())?;
                HostPattern::Exact(text)
            };
            out.push(pattern);
        }
        Ok(EgressPolicy { patterns: out })
    }

    /// True when `url`'s host matches a pattern (or there are none).
    pub fn allows(&self, url: &Url) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.patterns.iter().any(|p| match p {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
        })
    }

    /// `Ok` when allowed, else the message a step fails with.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        if self.allows(url) {
            return Ok(());
        }
        Err(format!(
            "http.request to host `{}` is not allowed (--http-allowed-hosts: {self})",
            url.host_str().unwrap_or_default()
        ))
    }
}

impl fmt::Display for EgressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patterns.is_empty() {
            return f.write_str("any host");
        }
        let names: Vec<String> = self
            .patterns
            .iter()
            .map(|p| match p {
                HostPattern::Any => "*".to_owned(),
                HostPattern::Exact(h) => h.clone(),
                HostPattern::Subdomain(s) => format!("*{s}"),
            })
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// A host name, IPv4 address or bracketed IPv6 address, without scheme, port or path.
fn check_host(host: &str, raw: &str) -> Result<(), String> {
    let bracketed_v6 = host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    let name = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if bracketed_v6 || name {
        Ok(())
    } else {
        Err(format!(
            "`{raw}` is not a host pattern (use `api.example.com`, `10.0.0.7`, `[fd00::1]`, `*.example.com` or `*`; no scheme, port or path)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test url")
    }

    #[test]
    fn no_patterns_allow_every_host() {
        let p = EgressPolicy::parse::<&str>(&[]).expect("empty");
        assert!(p.allows(&url("http://169.254.169.254/latest")));
        assert_eq!(p.to_string(), "any host");
    }

    #[test]
    fn exact_hosts_and_subdomains_match_case_insensitively() {
        let p = EgressPolicy::parse(&["API.example.com", "*.svc.cluster.local", "10.0.0.7"])
            .expect("valid");
        assert!(p.allows(&url("https://api.example.com/x")));
        assert!(p.allows(&url("https://API.EXAMPLE.COM./x")));
        assert!(p.allows(&url("http://web.prod.svc.cluster.local:8080/")));
        assert!(p.allows(&url("http://10.0.0.7/")));
        assert!(!p.allows(&url("http://svc.cluster.local/")), "bare suffix");
        assert!(!p.allows(&url("http://evilsvc.cluster.local/")));
        assert!(!p.allows(&url("http://example.com/")));
        assert!(!p.allows(&url("http://169.254.169.254/")));
        let err = p
            .check(&url("http://169.254.169.254/"))
            .expect_err("refused");
        assert_eq!(
            err,
            "http.request to host `169.254.169.254` is not allowed (--http-allowed-hosts: api.example.com, *.svc.cluster.local, 10.0.0.7)"
        );
    }

    #[test]
    fn ipv6_and_star_patterns() {
        let p = EgressPolicy::parse(&["[::1]"]).expect("v6");
        assert!(p.allows(&url("http://[::1]:3000/")));
        assert!(!p.allows(&url("http://127.0.0.1:3000/")));
        let any = EgressPolicy::parse(&["*"]).expect("star");
        assert!(any.allows(&url("http://anything.example/")));
    }

    #[test]
    fn malformed_patterns_are_named() {
        for bad in [
            "http://x.com",
            "x.com:80",
            "x.com/path",
            "*.",
            "a..b",
            "[::zz]",
        ] {
            let err = EgressPolicy::parse(&[bad]).expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }
}
