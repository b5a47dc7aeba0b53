//! Which line of a robots.txt a request broke, so the report can quote the file with those
//! lines marked. Whether a path is disallowed is `texting_robots`' answer for the agent's
//! product token (as the detector decides); the line shown is the longest `Disallow` pattern
//! that matches the path (robots.txt's most-specific-rule order, RFC 9309 §2.2.2).

use crate::detect::signals::robots::product_token;

/// One robots.txt version, parsed for attribution.
pub struct Rules {
    body: String,
    /// `(line number, pattern)` of every `Disallow` line with a pattern.
    disallows: Vec<(u32, String)>,
}

impl Rules {
    pub fn new(body: &str) -> Rules {
        let disallows = body
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let line = line.split('#').next().unwrap_or("").trim();
                let (name, value) = line.split_once(':')?;
                let value = value.trim();
                (name.trim().eq_ignore_ascii_case("disallow") && !value.is_empty())
                    .then(|| (i as u32 + 1, value.to_string()))
            })
            .collect();
        Rules {
            body: body.to_string(),
            disallows,
        }
    }

    /// The line (1-based) of the rule `target` (path and query) broke for `agent`, if it
    /// broke one.
    pub fn broken_line(&self, agent: &str, target: &str) -> Option<u32> {
        self.for_agent(agent).broken_line(target)
    }

    /// The rules as they apply to `agent`, parsed once to judge many of its requests.
    pub fn for_agent(&self, agent: &str) -> ForAgent {
        ForAgent {
            robot: texting_robots::Robot::new(product_token(agent), self.body.as_bytes()).ok(),
            disallows: self.disallows.clone(),
        }
    }
}

/// One version's rules for one agent.
pub struct ForAgent {
    robot: Option<texting_robots::Robot>,
    disallows: Vec<(u32, String)>,
}

impl ForAgent {
    /// The line (1-based) of the rule `target` (path and query) broke, if it broke one.
    pub fn broken_line(&self, target: &str) -> Option<u32> {
        if self.robot.as_ref()?.allowed(target) {
            return None;
        }
        self.disallows
            .iter()
            .filter(|(_, p)| matches(p, target))
            .max_by_key(|(_, p)| p.len())
            .map(|(n, _)| *n)
    }
}

/// Whether a robots.txt pattern (`*` any run, `$` end) matches the start of `target`.
pub fn matches(pattern: &str, target: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = (parts[0], &parts[1..]);
    if !target.starts_with(first) {
        return false;
    }
    if rest.is_empty() {
        return !anchored || target.len() == first.len();
    }
    let mut at = first.len();
    let (middle, last) = rest.split_at(rest.len() - 1);
    for part in middle {
        match target[at..].find(part) {
            Some(found) => at += found + part.len(),
            None => return false,
        }
    }
    let last = last[0];
    if anchored {
        target.len() >= at + last.len() && target.ends_with(last)
    } else {
        target[at..].contains(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_robots_wildcards() {
        assert!(matches("/_fp/", "/_fp/c/x.jpg"));
        assert!(!matches("/_fp/", "/photos/a.jpg"));
        assert!(matches("/*.jpg$", "/photos/a.jpg"));
        assert!(!matches("/*.jpg$", "/photos/a.jpg?x=1"));
        assert!(matches("/private", "/private/x"));
        assert!(matches("/a$", "/a"));
        assert!(!matches("/a$", "/ab"));
    }

    #[test]
    fn the_most_specific_disallow_is_the_one_broken() {
        let r = Rules::new("User-agent: *\nDisallow: /_fp/\nDisallow: /_fp/g/\nAllow: /ok\n");
        assert_eq!(r.broken_line("img2dataset/1.5", "/_fp/g/abc"), Some(3));
        assert_eq!(r.broken_line("img2dataset/1.5", "/_fp/c/t.jpg"), Some(2));
        assert_eq!(r.broken_line("img2dataset/1.5", "/photos/a.jpg"), None);
    }

    #[test]
    fn a_group_for_another_agent_is_not_broken() {
        let r =
            Rules::new("User-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /_fp/\n");
        assert_eq!(r.broken_line("img2dataset/1.5", "/photos/a.jpg"), None);
        assert_eq!(r.broken_line("Googlebot/2.1", "/photos/a.jpg"), Some(2));
    }
}
