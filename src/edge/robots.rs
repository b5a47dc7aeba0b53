//! robots.txt and TDMRep: the site's rules with faceprobe's own path disallowed in every
//! group, and the machine-readable text-and-data-mining reservation.
//!
//! "Read the rules, then broke them" is the strongest single fact in a complaint, so every
//! distinct robots.txt served is stored (bytes and SHA-256) and every fetch of it recorded.

pub use crate::record::published::{DEFAULT_ROBOTS as DEFAULT, DISALLOW_FP};

/// `/.well-known/tdmrep.json` (W3C TDMRep): text and data mining rights are reserved for
/// faceprobe's canaries.
pub const TDMREP: &str = "[\n  {\"location\": \"/_fp/*\", \"tdm-reservation\": 1}\n]\n";

/// The site's robots.txt with `Disallow: /_fp/` added to every group (after its
/// `User-agent` lines), since a crawler obeys only the group that names it. A file with no
/// group gets a `User-agent: *` group appended.
pub fn rewrite(original: &str) -> String {
    let mut out = String::with_capacity(original.len() + 64);
    let mut in_agents = false;
    let mut groups = 0;
    for line in original.lines() {
        let is_agent = field_is(line, "user-agent");
        if in_agents && !is_agent {
            out.push_str(DISALLOW_FP);
            out.push('\n');
            groups += 1;
        }
        in_agents = is_agent;
        out.push_str(line);
        out.push('\n');
    }
    if in_agents {
        out.push_str(DISALLOW_FP);
        out.push('\n');
        groups += 1;
    }
    if groups == 0 {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(DEFAULT);
    }
    out
}

fn field_is(line: &str, name: &str) -> bool {
    let line = line.split('#').next().unwrap_or("");
    line.split_once(':')
        .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_gets_the_rule_after_its_agents() {
        let src = "# site rules\nUser-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n";
        assert_eq!(
            rewrite(src),
            "# site rules\nUser-agent: GPTBot\nUser-agent: CCBot\nDisallow: /_fp/\nDisallow: /\n\nUser-agent: *\nDisallow: /_fp/\nDisallow: /private/\n"
        );
    }

    #[test]
    fn a_trailing_group_without_rules_still_gets_it() {
        assert_eq!(rewrite("user-agent: *"), "user-agent: *\nDisallow: /_fp/\n");
    }

    #[test]
    fn a_file_without_groups_gets_a_default_group() {
        assert_eq!(
            rewrite("Sitemap: /s.xml\n"),
            "Sitemap: /s.xml\n\nUser-agent: *\nDisallow: /_fp/\n"
        );
        assert_eq!(rewrite(""), DEFAULT);
    }
}
