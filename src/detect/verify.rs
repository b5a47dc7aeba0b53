//! A claimed search engine, checked the way the search engines document it: the address's
//! reverse DNS name must be in one of their domains, and that name must resolve back to the
//! address. Off by default (`detect.verify_search_engines`): it sends DNS queries about
//! visitors' addresses to the configured resolver. Lookups run on their own thread, never on
//! the detector's, through a bounded queue.

use std::net::IpAddr;
use std::sync::mpsc;

/// What the DNS said about a claimed search engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified(String),
    Unverified(String),
}

/// Checks one address against the search engines' domains.
pub fn verify(ip: IpAddr, domains: &[String]) -> Verdict {
    let host = match dns_lookup::lookup_addr(&ip) {
        Ok(h) => h.trim_end_matches('.').to_ascii_lowercase(),
        Err(e) => return Verdict::Unverified(format!("no reverse DNS name for {ip} ({e})")),
    };
    let in_domain = domains.iter().any(|d| {
        let d = d.trim_start_matches('.').to_ascii_lowercase();
        host == d || host.ends_with(&format!(".{d}"))
    });
    if !in_domain {
        return Verdict::Unverified(format!(
            "{ip} is named {host}, not in a search engine's domain"
        ));
    }
    let back = dns_lookup::lookup_host(&host).is_ok_and(|mut addrs| addrs.any(|a| a == ip));
    if back {
        Verdict::Verified(host)
    } else {
        Verdict::Unverified(format!("{host} does not resolve back to {ip}"))
    }
}

/// Lookups queued to a thread; answers collected without waiting.
pub struct Verifier {
    ask: mpsc::SyncSender<(String, IpAddr)>,
    answers: mpsc::Receiver<(String, Verdict)>,
}

impl Verifier {
    pub fn start(domains: Vec<String>) -> std::io::Result<Verifier> {
        let (ask, questions) = mpsc::sync_channel::<(String, IpAddr)>(1024);
        let (tell, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("faceprobe-dns".into())
            .spawn(move || {
                for (key, ip) in questions {
                    if tell.send((key, verify(ip, &domains))).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Verifier { ask, answers })
    }

    /// Queues a check; false when the queue is full (it is asked again at the next claim).
    pub fn ask(&self, key: String, ip: IpAddr) -> bool {
        self.ask.try_send((key, ip)).is_ok()
    }

    /// The answers that have come in.
    pub fn answers(&self) -> Vec<(String, Verdict)> {
        self.answers.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_not_a_search_engine_but_verifies_in_its_own_domain() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            verify(ip, &["googlebot.com".into(), "search.msn.com".into()]),
            Verdict::Unverified(_)
        ));
        // /etc/hosts names 127.0.0.1 localhost, and localhost resolves back to it.
        assert_eq!(
            verify(ip, &["localhost".into()]),
            Verdict::Verified("localhost".into())
        );
    }

    #[test]
    fn the_verifier_answers_from_its_thread() {
        let v = Verifier::start(vec!["googlebot.com".into()]).unwrap();
        assert!(v.ask("c:x".into(), "127.0.0.1".parse().unwrap()));
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        while got.is_empty() && start.elapsed() < std::time::Duration::from_secs(20) {
            got = v.answers();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "c:x");
        assert!(matches!(got[0].1, Verdict::Unverified(_)));
    }
}
