//! Access rules: an ordered list, first match wins, then the default policy.
//!
//! A rule matches on host (exact or `*.` wildcard), path regexes (`resources`, against
//! the canonical path only: see [`crate::http::target`]), query regexes (`query`, against
//! the raw query, only when a rule asks), methods, client networks, and subjects
//! (`user:NAME`, `group:NAME`). A rule
//! whose other criteria match but that names subjects cannot be decided for an anonymous
//! request: the answer is then "log in first", as Authelia does.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::host_pattern::{check_host_pattern, host_matches};

/// What a rule asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Let through without a login.
    Bypass,
    /// Refuse whoever asks.
    Deny,
    /// A password (or passwordless passkey) login.
    OneFactor,
    /// A password and a second factor.
    TwoFactor,
    /// A password and a second factor proved at this sign-in: a trusted device does
    /// not stand in for it (`two_factor` with `ask_every_time = true`).
    #[serde(skip)]
    TwoFactorEveryTime,
}

/// A rule as written in the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub domain: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    /// Regexes on the query string (without `?`; empty when there is none).
    #[serde(default)]
    pub query: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub subject: Vec<String>,
    pub policy: Policy,
    /// With `policy = "two_factor"`: ask for the second factor even on a device the
    /// user trusts.
    #[serde(default)]
    pub ask_every_time: bool,
}

#[derive(Debug, Clone)]
enum Subject {
    User(String),
    Group(String),
}

#[derive(Debug, Clone)]
struct Rule {
    domains: Vec<String>,
    resources: Vec<Regex>,
    query: Vec<Regex>,
    methods: Vec<String>,
    networks: Vec<IpNet>,
    subjects: Vec<Subject>,
    policy: Policy,
}

/// The compiled rule list.
#[derive(Debug, Clone)]
pub struct AccessRules {
    rules: Vec<Rule>,
    default_policy: Policy,
}

/// What is known of a request when rules are matched.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Host without port, normalised ([`crate::http::target::parse_authority`]).
    pub host: &'a str,
    /// The canonical path ([`crate::http::target::canonical_target`]), e.g. `/admin`.
    pub path: &'a str,
    /// The query as received, without `?`, when there is one.
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub client_ip: Option<IpAddr>,
}

/// Who is asking, when known.
#[derive(Debug, Clone, Copy)]
pub struct SubjectFacts<'a> {
    pub username: &'a str,
    pub groups: &'a [String],
}

/// The outcome of matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This policy applies.
    Apply(Policy),
    /// A rule naming subjects matched everything else: the user must log in to decide.
    NeedsIdentity,
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

impl AccessRules {
    /// Compiles and checks the rules; errors name `access_control.rules[i].field[j]`.
    pub fn compile(default_policy: Policy, raw: &[RawRule]) -> Result<Self> {
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let key = |field: &str, j: usize| format!("access_control.rules[{i}].{field}[{j}]");
            let domains = r
                .domain
                .iter()
                .enumerate()
                .map(|(j, d)| check_host_pattern(&key("domain", j), d))
                .collect::<Result<Vec<_>>>()?;
            let regexes = |field: &str, list: &[String]| {
                list.iter()
                    .enumerate()
                    .map(|(j, s)| {
                        Regex::new(s).map_err(|e| {
                            Error::config(key(field, j), s, format!("invalid regex: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            };
            let resources = regexes("resources", &r.resources)?;
            if let Some(j) = r.resources.iter().position(|x| x.contains("\\?")) {
                return Err(Error::config(
                    key("resources", j),
                    &r.resources[j],
                    "resources match the path alone (the query is never part of it): move the query part to `query`",
                ));
            }
            let query = regexes("query", &r.query)?;
            let methods = r
                .methods
                .iter()
                .enumerate()
                .map(|(j, m)| {
                    let upper = m.to_ascii_uppercase();
                    if METHODS.contains(&upper.as_str()) {
                        Ok(upper)
                    } else {
                        Err(Error::config(
                            key("methods", j),
                            m,
                            "expected an HTTP method such as GET or POST",
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let networks = r
                .networks
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            Error::config(
                                key("networks", j),
                                n,
                                "expected a CIDR such as 192.168.0.0/16",
                            )
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let subjects = r
                .subject
                .iter()
                .enumerate()
                .map(|(j, s)| match s.split_once(':') {
                    Some(("user", name)) if !name.is_empty() => Ok(Subject::User(name.to_string())),
                    Some(("group", name)) if !name.is_empty() => {
                        Ok(Subject::Group(name.to_string()))
                    }
                    _ => Err(Error::config(
                        key("subject", j),
                        s,
                        "expected `user:NAME` or `group:NAME`",
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            if r.policy == Policy::Bypass && !subjects.is_empty() {
                return Err(Error::config(
                    format!("access_control.rules[{i}].policy"),
                    "bypass",
                    "a bypass rule cannot name subjects (nobody is logged in to compare)",
                ));
            }
            rules.push(Rule {
                domains,
                resources,
                query,
                methods,
                networks,
                subjects,
                policy: match (r.policy, r.ask_every_time) {
                    (Policy::TwoFactor, true) => Policy::TwoFactorEveryTime,
                    (_, true) => {
                        return Err(Error::config(
                            format!("access_control.rules[{i}].ask_every_time"),
                            true,
                            "only a two_factor rule can ask every time",
                        ))
                    }
                    (policy, false) => policy,
                },
            });
        }
        Ok(AccessRules {
            rules,
            default_policy,
        })
    }

    /// Every domain pattern the rules name (these count as protected for `rd`).
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.domains.iter().map(String::as_str))
    }

    /// First matching rule's policy, else the default.
    pub fn evaluate(
        &self,
        request: &RequestFacts<'_>,
        subject: Option<SubjectFacts<'_>>,
    ) -> Verdict {
        for rule in &self.rules {
            if !rule.matches_request(request) {
                continue;
            }
            if rule.subjects.is_empty() {
                return Verdict::Apply(rule.policy);
            }
            match subject {
                None => return Verdict::NeedsIdentity,
                Some(who) if rule.matches_subject(who) => return Verdict::Apply(rule.policy),
                Some(_) => continue,
            }
        }
        Verdict::Apply(self.default_policy)
    }
}

/// A query string as a panel reads it: each `key=value` pair percent-decoded (`+` a
/// space) by the form decoder the portal uses, joined back with `&`.
fn decode_query(raw: &str) -> String {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

impl Rule {
    fn matches_request(&self, request: &RequestFacts<'_>) -> bool {
        (self.domains.is_empty() || self.domains.iter().any(|d| host_matches(d, request.host)))
            && (self.resources.is_empty()
                || self.resources.iter().any(|r| r.is_match(request.path)))
            && (self.query.is_empty() || {
                // As sent and as a panel reads it (escapes decoded, `+` a space), so
                // `?%65xport=` matches a rule written for `export=`.
                let raw = request.query.unwrap_or("");
                let decoded = decode_query(raw);
                self.query
                    .iter()
                    .any(|r| r.is_match(raw) || r.is_match(&decoded))
            })
            && (self.methods.is_empty()
                || self
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(request.method)))
            && (self.networks.is_empty()
                || request
                    .client_ip
                    .is_some_and(|ip| self.networks.iter().any(|n| n.contains(&ip))))
    }

    fn matches_subject(&self, who: SubjectFacts<'_>) -> bool {
        self.subjects.iter().any(|s| match s {
            Subject::User(name) => name == who.username,
            Subject::Group(group) => who.groups.iter().any(|g| g == group),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(policy: Policy) -> RawRule {
        RawRule {
            domain: vec![],
            resources: vec![],
            query: vec![],
            methods: vec![],
            networks: vec![],
            subject: vec![],
            policy,
            ask_every_time: false,
        }
    }

    #[test]
    fn only_a_two_factor_rule_can_ask_every_time() {
        let mut every_time = rule(Policy::TwoFactor);
        every_time.ask_every_time = true;
        let rules = AccessRules::compile(Policy::Deny, &[every_time.clone()]).unwrap();
        assert_eq!(
            rules.evaluate(&facts("a.test", "/", "GET", "10.0.0.1"), None),
            Verdict::Apply(Policy::TwoFactorEveryTime)
        );
        every_time.policy = Policy::OneFactor;
        let refused = AccessRules::compile(Policy::Deny, &[every_time]).unwrap_err();
        assert!(refused
            .to_string()
            .contains("access_control.rules[0].ask_every_time"));
    }

    fn facts<'a>(host: &'a str, path: &'a str, method: &'a str, ip: &str) -> RequestFacts<'a> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        RequestFacts {
            host,
            path,
            query,
            method,
            client_ip: Some(ip.parse().unwrap()),
        }
    }

    fn rules() -> AccessRules {
        let mut public = rule(Policy::Bypass);
        public.domain = vec!["panel.example.com".into()];
        public.resources = vec!["^/public/".into()];
        let mut lan_deny = rule(Policy::Deny);
        lan_deny.networks = vec!["10.0.0.0/8".into()];
        lan_deny.methods = vec!["delete".into()];
        let mut admins = rule(Policy::TwoFactor);
        admins.domain = vec!["*.example.com".into()];
        admins.resources = vec!["^/admin".into()];
        admins.subject = vec!["group:admins".into(), "user:root".into()];
        let mut admin_others = rule(Policy::Deny);
        admin_others.resources = vec!["^/admin".into()];
        AccessRules::compile(Policy::OneFactor, &[public, lan_deny, admins, admin_others]).unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = rules();
        assert_eq!(
            r.evaluate(
                &facts("panel.example.com", "/public/x", "DELETE", "10.1.1.1"),
                None
            ),
            Verdict::Apply(Policy::Bypass)
        );
        assert_eq!(
            r.evaluate(
                &facts("panel.example.com", "/x", "DELETE", "10.1.1.1"),
                None
            ),
            Verdict::Apply(Policy::Deny)
        );
    }

    #[test]
    fn unmatched_request_gets_default_policy() {
        assert_eq!(
            rules().evaluate(&facts("other.org", "/", "GET", "192.0.2.1"), None),
            Verdict::Apply(Policy::OneFactor)
        );
    }

    #[test]
    fn path_regex_anchors_on_path() {
        let r = rules();
        assert_eq!(
            r.evaluate(
                &facts("panel.example.com", "/x/public/", "GET", "192.0.2.1"),
                None
            ),
            Verdict::Apply(Policy::OneFactor)
        );
    }

    #[test]
    fn network_rule_needs_client_inside() {
        let r = rules();
        assert_eq!(
            r.evaluate(&facts("a.org", "/", "DELETE", "192.0.2.1"), None),
            Verdict::Apply(Policy::OneFactor)
        );
    }

    #[test]
    fn subject_rule_needs_identity_when_anonymous() {
        assert_eq!(
            rules().evaluate(
                &facts("panel.example.com", "/admin", "GET", "192.0.2.1"),
                None
            ),
            Verdict::NeedsIdentity
        );
    }

    #[test]
    fn subject_rule_matches_group_or_user_and_falls_through_otherwise() {
        let r = rules();
        let admins = ["admins".to_string()];
        let f = facts("panel.example.com", "/admin", "GET", "192.0.2.1");
        assert_eq!(
            r.evaluate(
                &f,
                Some(SubjectFacts {
                    username: "ann",
                    groups: &admins
                })
            ),
            Verdict::Apply(Policy::TwoFactor)
        );
        assert_eq!(
            r.evaluate(
                &f,
                Some(SubjectFacts {
                    username: "root",
                    groups: &[]
                })
            ),
            Verdict::Apply(Policy::TwoFactor)
        );
        assert_eq!(
            r.evaluate(
                &f,
                Some(SubjectFacts {
                    username: "bob",
                    groups: &[]
                })
            ),
            Verdict::Apply(Policy::Deny)
        );
    }

    #[test]
    fn wildcard_domain_does_not_match_lookalike() {
        let r = rules();
        let admins = ["admins".to_string()];
        let f = facts("evilexample.com", "/admin", "GET", "192.0.2.1");
        assert_eq!(
            r.evaluate(
                &f,
                Some(SubjectFacts {
                    username: "ann",
                    groups: &admins
                })
            ),
            Verdict::Apply(Policy::Deny)
        );
    }

    #[test]
    fn resources_match_the_path_alone_and_query_rules_the_query() {
        let mut css = rule(Policy::Bypass);
        css.resources = vec![r"\.css$".into()];
        let mut export = rule(Policy::Deny);
        export.query = vec!["(^|&)export=".into()];
        let r = AccessRules::compile(Policy::OneFactor, &[css, export]).unwrap();
        // `?x.css` does not widen a path rule...
        assert_eq!(
            r.evaluate(&facts("a.org", "/admin?x.css", "GET", "192.0.2.1"), None),
            Verdict::Apply(Policy::OneFactor)
        );
        assert_eq!(
            r.evaluate(&facts("a.org", "/site.css", "GET", "192.0.2.1"), None),
            Verdict::Apply(Policy::Bypass)
        );
        // ...and a rule that asks for the query gets it, however it is escaped.
        for q in [
            "/x?a=1&export=csv",
            "/x?a=1&%65xport=csv",
            "/x?%65%78port=1",
        ] {
            assert_eq!(
                r.evaluate(&facts("a.org", q, "GET", "192.0.2.1"), None),
                Verdict::Apply(Policy::Deny),
                "{q}"
            );
        }
    }

    #[test]
    fn a_resource_regex_written_for_the_query_is_refused_at_start() {
        let mut old_style = rule(Policy::Deny);
        old_style.resources = vec![r"^/report\?format=csv".into()];
        let err = AccessRules::compile(Policy::OneFactor, &[old_style])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("resources[0]") && err.contains("query"),
            "{err}"
        );
    }

    #[test]
    fn bypass_with_subject_is_refused() {
        let mut bad = rule(Policy::Bypass);
        bad.subject = vec!["user:x".into()];
        let err = AccessRules::compile(Policy::Deny, &[bad])
            .unwrap_err()
            .to_string();
        assert!(err.contains("access_control.rules[0].policy"), "{err}");
    }

    #[test]
    fn bad_method_and_subject_are_refused_with_key() {
        let mut bad = rule(Policy::Deny);
        bad.methods = vec!["FETCH".into()];
        assert!(AccessRules::compile(Policy::Deny, &[bad])
            .unwrap_err()
            .to_string()
            .contains("methods[0]"));
        let mut bad = rule(Policy::Deny);
        bad.subject = vec!["team:x".into()];
        assert!(AccessRules::compile(Policy::Deny, &[bad])
            .unwrap_err()
            .to_string()
            .contains("subject[0]"));
    }
}
