//! What the report says, in each language: turns the model into a [`Doc`]. Every client string
//! goes through `fmt::visible` here, once, so both renderers receive inert text.

use std::collections::BTreeMap;

use super::doc::*;
use super::fmt::{self, int, plural, visible};
use super::model::{self, Report};
use super::Lang;

/// Thumbnails drawn in the canary grid; the rest are named in the table and the bundle.
pub(crate) const GALLERY_MAX: usize = 24;
/// Fetch times listed under a robots.txt version before "and N more".
const FETCH_TIMES_MAX: usize = 8;

/// Chooses the French or the English words.
fn t(lang: Lang, fr: &str, en: &str) -> String {
    match lang {
        Lang::Fr => fr.to_string(),
        Lang::En => en.to_string(),
    }
}

/// « text » in French, “text” in English.
fn quote(lang: Lang, s: &str) -> String {
    match lang {
        Lang::Fr => format!("«\u{a0}{s}\u{a0}»"),
        Lang::En => format!("“{s}”"),
    }
}

/// `a, b et c` / `a, b and c`.
fn join_and(lang: Lang, items: &[String]) -> String {
    let and = t(lang, " et ", " and ");
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}{and}{last}", init.join(", ")),
    }
}

pub(crate) fn build(r: &Report, images: &BTreeMap<String, Vec<u8>>, lang: Lang) -> Doc {
    let mut doc_images = Vec::new();
    let sections = vec![
        actor(r, lang),
        activity(r, lang),
        robots(r, lang),
        opt_outs(r, lang),
        canaries(r, images, lang, &mut doc_images),
        site_images(r, lang),
        reasons(r, lang),
        found(r, lang),
        method(r, lang),
        proves(r, lang),
        legal(r, lang),
        integrity(r, lang),
        annex(r, lang),
    ];
    Doc {
        lang: match lang {
            Lang::Fr => "fr",
            Lang::En => "en",
        },
        title: title(lang),
        bundle_id: visible(&r.bundle_id),
        running: t(lang, "Rapport de constat", "Evidence report"),
        page_word: t(lang, "Page", "Page"),
        of_word: t(lang, "sur", "of"),
        contents_word: t(lang, "Sommaire", "Contents"),
        cover: cover(r, lang),
        summary_title: t(lang, "En bref", "Summary"),
        summary: summary(r, lang),
        badge: badge(r, lang),
        sections,
        images: doc_images,
    }
}

pub(crate) fn title(lang: Lang) -> String {
    t(
        lang,
        "Rapport de constat — collecte automatisée d'images",
        "Evidence report — automated image harvesting",
    )
}

fn or_dash(s: &str) -> String {
    if s.trim().is_empty() {
        "—".into()
    } else {
        visible(s)
    }
}

fn cover(r: &Report, lang: Lang) -> Vec<Fact> {
    let d = &r.deployment;
    let mut facts = vec![fact(t(lang, "Site", "Site"), vec![plain(or_dash(&d.site))])];
    if !d.instance.is_empty() {
        facts.push(fact(
            t(lang, "Instance", "Instance"),
            vec![plain(match lang {
                Lang::Fr => format!(
                    "{} (une des instances de la flotte ; ce rapport couvre ce qu'elle a enregistré)",
                    visible(&d.instance)
                ),
                Lang::En => format!(
                    "{} (one instance of the fleet; this report covers what it recorded)",
                    visible(&d.instance)
                ),
            })],
        ));
    }
    facts.extend([
        fact(
            t(lang, "Exploitant", "Operator"),
            vec![plain(or_dash(&d.operator))],
        ),
        fact(
            t(lang, "Contact", "Contact"),
            vec![plain(or_dash(&d.contact))],
        ),
        fact(
            t(lang, "Dossier", "Bundle"),
            vec![mono(or_dash(&r.bundle_id))],
        ),
        fact(
            t(lang, "Créé le", "Created"),
            vec![plain(fmt::datetime(r.created_ms))],
        ),
        fact(
            t(lang, "Outil", "Tool"),
            vec![plain(format!("faceprobe {}", visible(&r.tool_version)))],
        ),
        fact(
            t(lang, "Acteur", "Actor"),
            vec![mono(or_dash(&r.actor.key))],
        ),
        fact(
            t(lang, "Période", "Period"),
            vec![plain(format!(
                "{} → {}",
                fmt::datetime(r.actor.first_ms),
                fmt::datetime(r.actor.last_ms)
            ))],
        ),
    ]);
    facts
}

fn level_name(lang: Lang, level: Option<&str>) -> String {
    match level {
        Some("watch") => t(lang, "surveillance", "watch"),
        Some("suspect") => t(lang, "suspect", "suspect"),
        Some("harvester") => t(lang, "collecteur (harvester)", "harvester"),
        Some(other) => visible(other),
        None => t(lang, "aucun", "none"),
    }
}

fn badge(r: &Report, lang: Lang) -> String {
    format!(
        "{} {} · {} {}",
        t(lang, "Niveau", "Level"),
        level_name(lang, r.actor.level.as_deref()),
        t(lang, "score", "score"),
        fmt::dec(lang, r.actor.score, 1)
    )
}

/// The address list a sentence can carry: up to three, then "and N others".
fn addresses_phrase(r: &Report, lang: Lang) -> String {
    let a = &r.actor.addresses;
    let mut shown: Vec<String> = a.iter().take(3).map(|x| visible(&x.address)).collect();
    if a.len() > 3 {
        let rest = (a.len() - 3) as u64;
        shown.push(match lang {
            Lang::Fr => format!(
                "{} {}",
                int(lang, rest),
                plural(lang, rest, "autre", "autres")
            ),
            Lang::En => format!(
                "{} {}",
                int(lang, rest),
                plural(lang, rest, "other", "others")
            ),
        });
    }
    join_and(lang, &shown)
}

fn top_agent(r: &Report) -> Option<&model::Agent> {
    r.actor.agents.iter().max_by_key(|a| a.requests)
}

fn agent_phrase(r: &Report, lang: Lang) -> String {
    let n = r.actor.agents.len() as u64;
    match top_agent(r) {
        None => t(
            lang,
            "sans agent utilisateur connu",
            "with no known user agent",
        ),
        Some(a) if a.agent.is_empty() && n == 1 => t(
            lang,
            "sans en-tête User-Agent",
            "sending no User-Agent header",
        ),
        Some(a) if n == 1 => format!(
            "{} {}",
            t(lang, "avec l'agent utilisateur", "with the user agent"),
            quote(lang, &fmt::cut(lang, &a.agent, 90))
        ),
        Some(a) => match lang {
            Lang::Fr => format!(
                "avec {} agents utilisateurs, le plus fréquent étant {}",
                int(lang, n),
                quote(lang, &fmt::cut(lang, &a.agent, 90))
            ),
            Lang::En => format!(
                "with {} user agents, the most frequent {}",
                int(lang, n),
                quote(lang, &fmt::cut(lang, &a.agent, 90))
            ),
        },
    }
}

fn summary(r: &Report, lang: Lang) -> Vec<Span> {
    let a = &r.activity;
    let n_addr = r.actor.addresses.len() as u64;
    let site = or_dash(&r.deployment.site);
    let mut s = Vec::new();
    let who = match lang {
        Lang::Fr => format!(
            "Du {} au {} ({}), l'acteur ",
            fmt::datetime(r.actor.first_ms),
            fmt::datetime(r.actor.last_ms),
            fmt::span(lang, r.actor.last_ms - r.actor.first_ms)
        ),
        Lang::En => format!(
            "From {} to {} ({}), the actor ",
            fmt::datetime(r.actor.first_ms),
            fmt::datetime(r.actor.last_ms),
            fmt::span(lang, r.actor.last_ms - r.actor.first_ms)
        ),
    };
    s.push(plain(who));
    s.push(mono(or_dash(&r.actor.key)));
    s.push(plain(match (lang, n_addr) {
        (Lang::Fr, 0) => format!(
            " a envoyé {} {} au site {site} par l'instance {}, {}. ",
            int(lang, a.requests),
            plural(lang, a.requests, "requête", "requêtes"),
            or_dash(&r.deployment.instance),
            agent_phrase(r, lang)
        ),
        (Lang::En, 0) => format!(
            " sent {} {} to {site} through its instance {}, {}. ",
            int(lang, a.requests),
            plural(lang, a.requests, "request", "requests"),
            or_dash(&r.deployment.instance),
            agent_phrase(r, lang)
        ),
        (Lang::Fr, _) => format!(
            " a envoyé {} {} au site {site} depuis {} {} IP ({}), {}. ",
            int(lang, a.requests),
            plural(lang, a.requests, "requête", "requêtes"),
            int(lang, n_addr),
            plural(lang, n_addr, "adresse", "adresses"),
            addresses_phrase(r, lang),
            agent_phrase(r, lang)
        ),
        (Lang::En, _) => format!(
            " sent {} {} to {site} from {} IP {} ({}), {}. ",
            int(lang, a.requests),
            plural(lang, a.requests, "request", "requests"),
            int(lang, n_addr),
            plural(lang, n_addr, "address", "addresses"),
            addresses_phrase(r, lang),
            agent_phrase(r, lang)
        ),
    }));
    let canaries = a.distinct_canaries.max(r.canaries.len() as u64);
    let mut what = match lang {
        Lang::Fr => format!(
            "Il a téléchargé {} {} — des visages synthétiques cachés aux visiteurs humains — et {} {} du site lui-même",
            int(lang, canaries),
            plural(lang, canaries, "image « canari »", "images « canaris »").replace(' ', "\u{a0}"),
            int(lang, r.site_images_total),
            plural(lang, r.site_images_total, "image", "images"),
        ),
        Lang::En => format!(
            "It downloaded {} canary {} — synthetic faces hidden from human visitors — and {} of the site's own {}",
            int(lang, canaries),
            plural(lang, canaries, "image", "images"),
            int(lang, r.site_images_total),
            plural(lang, r.site_images_total, "image", "images"),
        ),
    };
    if a.robots_violations > 0 {
        what += &match lang {
            Lang::Fr => format!(
                " ; il a enfreint robots.txt {} fois",
                int(lang, a.robots_violations)
            ),
            Lang::En => format!(
                "; it broke robots.txt {} {}",
                int(lang, a.robots_violations),
                plural(lang, a.robots_violations, "time", "times")
            ),
        };
    }
    if a.max_trap_depth > 0 {
        what += &match lang {
            Lang::Fr => format!(
                " et suivi les galeries pièges jusqu'à la profondeur {}",
                a.max_trap_depth
            ),
            Lang::En => format!(
                " and followed the trap galleries to depth {}",
                a.max_trap_depth
            ),
        };
    }
    what.push('.');
    s.push(plain(what));
    let ignored: Vec<String> = r
        .opt_outs
        .iter()
        .filter(|o| o.ignored > 0)
        .map(|o| signal_name(lang, &o.signal))
        .collect();
    if !ignored.is_empty() {
        s.push(plain(match lang {
            Lang::Fr => format!(
                " Il a passé outre les signaux d'opposition qui lui ont été servis : {}.",
                join_and(lang, &ignored)
            ),
            Lang::En => {
                format!(
                    " It ignored the opt-out signals it was served: {}.",
                    join_and(lang, &ignored)
                )
            }
        }));
    }
    s
}

fn actor(r: &Report, lang: Lang) -> Section {
    let ac = &r.actor;
    let kind = match ac.kind.as_str() {
        "client" => t(
            lang,
            "client (une adresse et un agent utilisateur)",
            "client (one address and one user agent)",
        ),
        "cluster" => t(
            lang,
            "grappe (plusieurs clients qui agissent de concert)",
            "cluster (several clients acting together)",
        ),
        "fleet" => t(
            lang,
            "acteur de la flotte (une adresse et un agent utilisateur, suivis sur toutes les instances sous un pseudonyme à clé)",
            "fleet actor (one address and one user agent, followed over every instance under a keyed pseudonym)",
        ),
        other => visible(other),
    };
    let mut facts = vec![
        fact(t(lang, "Clé", "Key"), vec![mono(or_dash(&ac.key))]),
        fact(t(lang, "Nature", "Kind"), vec![plain(kind)]),
        fact(
            t(lang, "Niveau et score", "Level and score"),
            vec![plain(format!(
                "{} — {}",
                level_name(lang, ac.level.as_deref()),
                fmt::dec(lang, ac.score, 1)
            ))],
        ),
    ];
    if let Some(c) = &ac.crawler {
        facts.push(fact(
            t(lang, "Robot déclaré", "Declared crawler"),
            vec![mono(visible(c))],
        ));
    }
    facts.push(fact(
        t(lang, "Première requête", "First request"),
        vec![plain(fmt::datetime(ac.first_ms))],
    ));
    facts.push(fact(
        t(lang, "Dernière requête", "Last request"),
        vec![plain(fmt::datetime(ac.last_ms))],
    ));
    let mut blocks = vec![Block::Facts { rows: facts }];

    blocks.push(Block::Subheading {
        text: t(lang, "Adresses", "Addresses"),
    });
    if ac.addresses.is_empty() && ac.kind == "fleet" {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Les adresses IP ne quittent jamais l'instance qui les a enregistrées : ce dossier de flotte donne l'adresse de chaque requête sous forme d'engagement seulement (ip_commit, SHA-256 de l'adresse et d'un nombre aléatoire). L'instance qui conserve encore l'adresse brute peut la divulguer dans un dossier qui lui est propre, que cet engagement relie à ces requêtes.",
                "IP addresses never leave the instance that recorded them: this fleet bundle gives each request's address as a commitment only (ip_commit, SHA-256 of the address and a random nonce). The instance that still keeps the raw address can disclose it in a bundle of its own, which that commitment ties to these requests.",
            ),
        });
    } else if ac.addresses.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucune adresse n'est enregistrée pour cet acteur.",
                "No address is recorded for this actor.",
            ),
        });
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Adresse", "Address"), "left", 1, true),
                col(t(lang, "Forme", "Form"), "left", 0, false),
                col(t(lang, "Requêtes", "Requests"), "right", 0, false),
                col(t(lang, "Première", "First"), "left", 0, false),
                col(t(lang, "Dernière", "Last"), "left", 0, false),
            ],
            rows: ac
                .addresses
                .iter()
                .map(|a| {
                    vec![
                        visible(&a.address),
                        if a.raw {
                            t(lang, "brute", "raw")
                        } else {
                            t(lang, "pseudonyme", "pseudonym")
                        },
                        int(lang, a.requests),
                        fmt::datetime(a.first_ms),
                        fmt::datetime(a.last_ms),
                    ]
                })
                .collect(),
            total: None,
        }));
        let note = if ac.addresses.iter().all(|a| a.raw) {
            t(
                lang,
                "Toutes les adresses sont reproduites en clair, telles qu'enregistrées.",
                "All addresses are given raw, as recorded.",
            )
        } else {
            t(
                lang,
                "« Brute » : l'adresse IP telle que reçue. « Pseudonyme » : l'adresse brute avait déjà été effacée à l'expiration de sa durée de conservation ; seul subsiste son pseudonyme à clé (ip:…, HMAC-SHA-256), qui permet de reconnaître la même adresse sans la révéler.",
                "“Raw”: the IP address as received. “Pseudonym”: the raw address had already been erased when its retention ended; only its keyed pseudonym (ip:…, HMAC-SHA-256) remains, which recognises the same address without revealing it.",
            )
        };
        blocks.push(text(note));
    }

    blocks.push(Block::Subheading {
        text: t(lang, "Agents utilisateurs", "User agents"),
    });
    if ac.agents.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucun agent utilisateur n'est enregistré.",
                "No user agent is recorded.",
            ),
        });
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                col(
                    t(
                        lang,
                        "En-tête User-Agent, tel qu'envoyé",
                        "User-Agent header, as sent",
                    ),
                    "left",
                    1,
                    true,
                ),
                col(t(lang, "Requêtes", "Requests"), "right", 0, false),
            ],
            rows: ac
                .agents
                .iter()
                .map(|a| {
                    let shown = if a.agent.is_empty() {
                        t(lang, "(aucun)", "(none)")
                    } else {
                        fmt::cut(lang, &a.agent, 600)
                    };
                    vec![shown, int(lang, a.requests)]
                })
                .collect(),
            total: None,
        }));
    }
    if !ac.members.is_empty() {
        let (heading, intro) = match ac.kind.as_str() {
            "fleet" => (
                t(lang, "Clés de l'instance", "Keys on this instance"),
                t(
                    lang,
                    "Clés sous lesquelles cette instance a enregistré l'acteur : ",
                    "Keys under which this instance recorded the actor: ",
                ),
            ),
            _ => (
                t(lang, "Membres de la grappe", "Cluster members"),
                t(
                    lang,
                    "Clés des clients que le détecteur a réunis dans cette grappe : ",
                    "Keys of the clients the detector joined into this cluster: ",
                ),
            ),
        };
        blocks.push(Block::Subheading { text: heading });
        blocks.push(para(vec![plain(intro)]));
        blocks.push(Block::List {
            items: ac.members.iter().map(|m| vec![mono(visible(m))]).collect(),
        });
    }
    Section {
        title: t(lang, "L'acteur", "The actor"),
        annex: false,
        blocks,
    }
}

fn activity(r: &Report, lang: Lang) -> Section {
    let a = &r.activity;
    let rows: Vec<(String, String, u64)> = vec![
        (
            t(lang, "Pages", "Pages"),
            t(lang, "pages HTML du site", "the site's HTML pages"),
            a.pages,
        ),
        (
            t(lang, "Images du site", "Site images"),
            t(
                lang,
                "photographies publiées par le site",
                "photographs the site publishes",
            ),
            a.site_images,
        ),
        (
            t(lang, "Canaris", "Canaries"),
            match lang {
                Lang::Fr => format!(
                    "visages synthétiques cachés ({} distincts)",
                    int(lang, a.distinct_canaries)
                ),
                Lang::En => format!(
                    "hidden synthetic faces ({} distinct)",
                    int(lang, a.distinct_canaries)
                ),
            },
            a.canaries,
        ),
        (
            t(lang, "Galeries pièges", "Trap galleries"),
            match lang {
                Lang::Fr => format!(
                    "pages invisibles aux visiteurs (profondeur maximale {})",
                    a.max_trap_depth
                ),
                Lang::En => format!(
                    "pages invisible to visitors (deepest: {})",
                    a.max_trap_depth
                ),
            },
            a.traps,
        ),
        (
            t(lang, "robots.txt lu", "robots.txt fetched"),
            t(
                lang,
                "lectures du fichier de règles",
                "reads of the rules file",
            ),
            a.robots_fetches,
        ),
        (
            t(lang, "robots.txt enfreint", "robots.txt broken"),
            t(
                lang,
                "requêtes vers un chemin interdit",
                "requests for a forbidden path",
            ),
            a.robots_violations,
        ),
        (
            t(lang, "Ressources", "Assets"),
            t(
                lang,
                "feuilles de style, scripts, polices",
                "stylesheets, scripts, fonts",
            ),
            a.assets,
        ),
        (
            t(lang, "Autres", "Other"),
            t(lang, "toute autre requête", "any other request"),
            a.other,
        ),
    ];
    let mut blocks = vec![text(match lang {
        Lang::Fr => format!(
            "L'acteur a envoyé {} {} entre le {} et le {}. Chaque requête est rangée dans une seule catégorie, sauf les infractions à robots.txt, qui sont comptées en plus de la catégorie de la requête.",
            int(lang, a.requests),
            plural(lang, a.requests, "requête", "requêtes"),
            fmt::datetime(a.first_ms),
            fmt::datetime(a.last_ms)
        ),
        Lang::En => format!(
            "The actor sent {} {} between {} and {}. Each request falls in one category, except robots.txt violations, which are counted on top of the request's own category.",
            int(lang, a.requests),
            plural(lang, a.requests, "request", "requests"),
            fmt::datetime(a.first_ms),
            fmt::datetime(a.last_ms)
        ),
    })];
    blocks.push(Block::Table(Table {
        columns: vec![
            col(t(lang, "Catégorie", "Category"), "left", 0, false),
            col(t(lang, "Ce que c'est", "What it is"), "left", 1, false),
            col(t(lang, "Requêtes", "Requests"), "right", 0, false),
        ],
        rows: rows
            .into_iter()
            .map(|(k, w, n)| vec![k, w, int(lang, n)])
            .collect(),
        total: Some(vec![
            t(lang, "Total", "Total"),
            String::new(),
            int(lang, a.requests),
        ]),
    }));
    if r.timeline.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucune chronologie n'a été fournie.",
                "No timeline was provided.",
            ),
        });
    } else {
        let width = r
            .timeline
            .first()
            .map(|b| b.end_ms - b.start_ms)
            .unwrap_or(0);
        blocks.push(Block::Chart {
            caption: match lang {
                Lang::Fr => format!(
                    "Requêtes par tranche de {}, du {} au {}.",
                    fmt::span(lang, width),
                    fmt::datetime(r.timeline[0].start_ms),
                    fmt::datetime(r.timeline[r.timeline.len() - 1].end_ms)
                ),
                Lang::En => format!(
                    "Requests per {} interval, from {} to {}.",
                    fmt::span(lang, width),
                    fmt::datetime(r.timeline[0].start_ms),
                    fmt::datetime(r.timeline[r.timeline.len() - 1].end_ms)
                ),
            },
        });
    }
    Section {
        title: t(lang, "Ce que l'acteur a fait", "What the actor did"),
        annex: false,
        blocks,
    }
}

fn times_list(lang: Lang, ms: &[i64]) -> String {
    let mut shown: Vec<String> = ms
        .iter()
        .take(FETCH_TIMES_MAX)
        .map(|&m| fmt::datetime(m))
        .collect();
    if ms.len() > FETCH_TIMES_MAX {
        let rest = (ms.len() - FETCH_TIMES_MAX) as u64;
        shown.push(match lang {
            Lang::Fr => format!(
                "{} {}",
                int(lang, rest),
                plural(lang, rest, "autre", "autres")
            ),
            Lang::En => format!(
                "{} {}",
                int(lang, rest),
                plural(lang, rest, "other", "others")
            ),
        });
    }
    join_and(lang, &shown)
}

fn robots(r: &Report, lang: Lang) -> Section {
    let mut blocks = vec![text(t(
        lang,
        "Le fichier robots.txt est la convention par laquelle un site indique aux robots ce qu'ils ne doivent pas visiter (Robots Exclusion Protocol, RFC 9309). Il est reproduit ci-dessous tel qu'il a été servi à l'acteur ; les lignes qu'il a enfreintes sont surlignées.",
        "robots.txt is the convention by which a site tells robots what not to visit (Robots Exclusion Protocol, RFC 9309). It is quoted below as it was served to the actor; the lines it broke are highlighted.",
    ))];
    if r.robots.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucune version de robots.txt n'a été servie à cet acteur.",
                "No version of robots.txt was served to this actor.",
            ),
        });
    }
    let many = r.robots.len() > 1;
    for (i, v) in r.robots.iter().enumerate() {
        if many {
            blocks.push(Block::Subheading {
                text: format!("Version {}", i + 1),
            });
        }
        let n = v.fetched_ms.len() as u64;
        blocks.push(Block::Facts {
            rows: vec![
                fact(
                    t(lang, "Fichier", "File"),
                    vec![mono(format!("robots/{}.txt", visible(&v.sha256)))],
                ),
                fact(
                    t(lang, "Servie dès le", "First served"),
                    vec![plain(fmt::datetime(v.first_served_ms))],
                ),
                fact(
                    t(lang, "Lue par l'acteur", "Fetched by the actor"),
                    vec![plain(if n == 0 {
                        t(lang, "jamais", "never")
                    } else {
                        match lang {
                            Lang::Fr => format!(
                                "{} fois : {}",
                                int(lang, n),
                                times_list(lang, &v.fetched_ms)
                            ),
                            Lang::En => format!(
                                "{} {}: {}",
                                int(lang, n),
                                plural(lang, n, "time", "times"),
                                times_list(lang, &v.fetched_ms)
                            ),
                        }
                    })],
                ),
            ],
        });
        blocks.push(Block::Code {
            caption: String::new(),
            lines: v
                .lines
                .iter()
                .map(|l| CodeLine {
                    number: l.number,
                    text: visible(&l.text),
                    mark: (l.broken > 0).then(|| match lang {
                        Lang::Fr => format!("← enfreinte {} fois", int(lang, l.broken)),
                        Lang::En => format!(
                            "← broken {} {}",
                            int(lang, l.broken),
                            plural(lang, l.broken, "time", "times")
                        ),
                    }),
                })
                .collect(),
        });
    }
    Section {
        title: t(lang, "robots.txt tel que servi", "robots.txt as served"),
        annex: false,
        blocks,
    }
}

fn signal_name(lang: Lang, signal: &str) -> String {
    match signal {
        "robots_txt" => "robots.txt".into(),
        "x_robots_tag" => "X-Robots-Tag".into(),
        "tdm_reservation" => t(lang, "TDM Reservation Protocol", "TDM Reservation Protocol"),
        "xmp_data_mining" => "XMP plus:DataMining (PLUS)".into(),
        other => visible(other),
    }
}

fn signal_meaning(lang: Lang, signal: &str) -> String {
    match signal {
        "robots_txt" => t(
            lang,
            "Règles publiées à la racine du site : chaque ligne Disallow interdit aux robots les chemins qu'elle désigne.",
            "Rules published at the site's root: each Disallow line forbids robots the paths it names.",
        ),
        "x_robots_tag" => t(
            lang,
            "En-tête HTTP joint aux réponses : « noai » et « noimageai » demandent que le contenu et les images ne servent pas à l'intelligence artificielle.",
            "HTTP header sent with the responses: “noai” and “noimageai” ask that the content and images not be used for artificial intelligence.",
        ),
        "tdm_reservation" => t(
            lang,
            "En-tête du protocole TDMRep (W3C) : « 1 » réserve les droits de fouille de textes et de données, au sens de l'art. 4 de la directive (UE) 2019/790.",
            "TDMRep (W3C) header: “1” reserves the text and data mining rights, in the sense of Art. 4 of Directive (EU) 2019/790.",
        ),
        "xmp_data_mining" => t(
            lang,
            "Métadonnée inscrite dans chaque image (vocabulaire PLUS) : DMI-PROHIBITED interdit toute fouille de données sur l'image, y compris pour l'apprentissage automatique.",
            "Metadata written into each image (PLUS vocabulary): DMI-PROHIBITED forbids any data mining of the image, machine learning included.",
        ),
        _ => t(lang, "Signal d'opposition.", "Opt-out signal."),
    }
}

fn opt_outs(r: &Report, lang: Lang) -> Section {
    let mut blocks = vec![text(t(
        lang,
        "Le site signifie son refus de la collecte automatisée par quatre moyens lisibles par une machine. Pour chacun : la valeur servie, ce qu'elle signifie, combien de réponses à l'acteur la portaient, et combien de ses requêtes ont suivi alors qu'il l'avait déjà reçue.",
        "The site states its refusal of automated collection in four machine-readable ways. For each: the value served, what it means, how many responses to the actor carried it, and how many of its requests came after it had already received it.",
    ))];
    if r.opt_outs.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucun signal d'opposition n'a été servi à cet acteur.",
                "No opt-out signal was served to this actor.",
            ),
        });
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Signal", "Signal"), "left", 0, false),
                col(t(lang, "Valeur servie", "Value served"), "left", 1, true),
                col(t(lang, "Signification", "Meaning"), "left", 2, false),
                col(t(lang, "Servi", "Served"), "right", 0, false),
                col(t(lang, "Ignoré", "Ignored"), "right", 0, false),
            ],
            rows: r
                .opt_outs
                .iter()
                .map(|o| {
                    let mut meaning = signal_meaning(lang, &o.signal);
                    if let Some(ms) = o.first_served_ms {
                        meaning += &match lang {
                            Lang::Fr => format!(" Premier envoi : {}.", fmt::datetime(ms)),
                            Lang::En => format!(" First served: {}.", fmt::datetime(ms)),
                        };
                    }
                    vec![
                        signal_name(lang, &o.signal),
                        visible(&o.value),
                        meaning,
                        int(lang, o.served),
                        int(lang, o.ignored),
                    ]
                })
                .collect(),
            total: None,
        }));
        blocks.push(text(t(
            lang,
            "« Servi » : réponses à l'acteur qui portaient le signal. « Ignoré » : requêtes de l'acteur postérieures à la première réception du signal.",
            "“Served”: responses to the actor that carried the signal. “Ignored”: the actor's requests made after it first received the signal.",
        )));
    }
    Section {
        title: t(
            lang,
            "Signaux d'opposition ignorés",
            "Opt-out signals ignored",
        ),
        annex: false,
        blocks,
    }
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xff, 0xd8, 0xff])
        && image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).is_ok()
}

fn depth_name(lang: Lang, depth: u32) -> String {
    if depth == 0 {
        t(lang, "page du site", "site page")
    } else {
        match lang {
            Lang::Fr => format!("galerie piège {depth}"),
            Lang::En => format!("trap gallery {depth}"),
        }
    }
}

fn canaries(
    r: &Report,
    images: &BTreeMap<String, Vec<u8>>,
    lang: Lang,
    out: &mut Vec<String>,
) -> Section {
    let mut blocks = vec![text(t(
        lang,
        "Un canari est le visage synthétique d'une personne qui n'existe pas, créé pour une seule consultation d'une page. Il est caché aux personnes : jamais affiché, marqué hidden et chargé à la demande (lazy), si bien qu'un navigateur ne le télécharge pas et qu'aucun visiteur ne le voit. Seul un programme qui analyse le code HTML et télécharge toutes les images qu'il y trouve le prend. Son jeton, unique, relie l'image à la requête exacte qui l'a reçue : une copie retrouvée ailleurs désigne donc cette requête.",
        "A canary is the synthetic face of a person who does not exist, made for one page view. It is hidden from people: never displayed, marked hidden and lazy-loaded, so a browser does not download it and no visitor sees it. Only a program that parses the HTML and downloads every image it finds takes it. Its unique token ties the image to the exact request that received it: a copy found elsewhere points to that request.",
    ))];
    if r.canaries.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "L'acteur n'a téléchargé aucun canari.",
                "The actor downloaded no canary.",
            ),
        });
        return Section {
            title: t(lang, "Canaris pris", "Canaries taken"),
            annex: false,
            blocks,
        };
    }
    let items = r
        .canaries
        .iter()
        .take(GALLERY_MAX)
        .map(|c| {
            let image = images.get(&c.file).filter(|b| is_jpeg(b)).map(|_| {
                out.push(c.file.clone());
                out.len() - 1
            });
            Thumb {
                image,
                token: fmt::short(&c.token, 12),
                time: fmt::datetime_short(c.first_fetch_ms),
            }
        })
        .collect();
    let more = (r.canaries.len() > GALLERY_MAX).then(|| {
        let rest = (r.canaries.len() - GALLERY_MAX) as u64;
        match lang {
            Lang::Fr => format!(
                "… et {} {}, tous dans le dossier canaries/.",
                int(lang, rest),
                plural(lang, rest, "autre", "autres")
            ),
            Lang::En => format!(
                "… and {} more, all in the canaries/ folder.",
                int(lang, rest)
            ),
        }
    });
    blocks.push(Block::Gallery { items, more });
    blocks.push(Block::Subheading {
        text: t(lang, "Tous les jetons", "Every token"),
    });
    let handed = r.canaries.iter().filter(|c| !c.minted_for_actor).count() as u64;
    blocks.push(Block::Table(Table {
        columns: vec![
            col("#", "right", 0, false),
            col(t(lang, "Jeton", "Token"), "left", 1, true),
            col(
                t(lang, "Premier téléchargement (UTC)", "First fetch (UTC)"),
                "left",
                0,
                false,
            ),
            col(t(lang, "Fois", "Fetches"), "right", 0, false),
            col(t(lang, "Placé dans", "Planted in"), "left", 0, false),
            col(t(lang, "Page vue par", "Page viewed by"), "left", 0, false),
        ],
        rows: r
            .canaries
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    int(lang, i as u64 + 1),
                    visible(&c.token),
                    fmt::datetime_short(c.first_fetch_ms),
                    int(lang, c.fetches),
                    depth_name(lang, c.depth),
                    if c.minted_for_actor {
                        t(lang, "l'acteur", "the actor")
                    } else {
                        t(lang, "un autre client", "another client")
                    },
                ]
            })
            .collect(),
        total: None,
    }));
    blocks.push(text(if handed == 0 {
        t(
            lang,
            "Chaque canari a été créé pour une page que l'acteur lui-même a demandée.",
            "Every canary was made for a page the actor itself requested.",
        )
    } else {
        match lang {
            Lang::Fr => format!(
                "{} {} pour une page demandée par un autre client : l'adresse de l'image a été transmise d'un programme à l'autre, signe d'une collecte répartie.",
                int(lang, handed),
                plural(lang, handed, "canari a été créé", "canaris ont été créés")
            ),
            Lang::En => format!(
                "{} {} made for a page another client requested: the image's address was handed from one program to the other, a sign of distributed collection.",
                int(lang, handed),
                plural(lang, handed, "canary was", "canaries were")
            ),
        }
    }));
    Section {
        title: t(lang, "Canaris pris", "Canaries taken"),
        annex: false,
        blocks,
    }
}

fn site_images(r: &Report, lang: Lang) -> Section {
    let mut blocks = vec![text(t(
        lang,
        "Ce sont les photographies réelles que publie le site. Les personnes qu'on y voit sont les personnes concernées au sens du RGPD : ce sont leurs données, et notamment l'image de leur visage, que l'acteur a collectées.",
        "These are the real photographs the site publishes. The people seen in them are the data subjects in the GDPR's sense: it is their data, their faces among it, that the actor collected.",
    ))];
    if r.site_images.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "L'acteur n'a téléchargé aucune image du site.",
                "The actor downloaded none of the site's images.",
            ),
        });
    } else {
        // Totals over every image taken, also when the table shows only the first of them.
        let (images, fetches, bytes) = (
            r.site_images_total,
            r.activity.site_images,
            r.site_images_bytes,
        );
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Chemin", "Path"), "left", 1, true),
                col(t(lang, "Fois", "Fetches"), "right", 0, false),
                col(t(lang, "Premier (UTC)", "First (UTC)"), "left", 0, false),
                col(t(lang, "Dernier (UTC)", "Last (UTC)"), "left", 0, false),
                col(t(lang, "Taille", "Size"), "right", 0, false),
            ],
            rows: r
                .site_images
                .iter()
                .map(|i| {
                    vec![
                        fmt::cut(lang, &i.path, 300),
                        int(lang, i.fetches),
                        fmt::datetime_short(i.first_ms),
                        fmt::datetime_short(i.last_ms),
                        fmt::bytes(lang, i.bytes),
                    ]
                })
                .collect(),
            total: Some(vec![
                match lang {
                    Lang::Fr => format!(
                        "Total : {} {}",
                        int(lang, images),
                        plural(lang, images, "image", "images")
                    ),
                    Lang::En => format!(
                        "Total: {} {}",
                        int(lang, images),
                        plural(lang, images, "image", "images")
                    ),
                },
                int(lang, fetches),
                String::new(),
                String::new(),
                fmt::bytes(lang, bytes),
            ]),
        }));
        if (r.site_images.len() as u64) < r.site_images_total {
            blocks.push(Block::Note {
                text: match lang {
                    Lang::Fr => format!(
                        "Le tableau montre les {} premières images sur {} ; la liste complète est dans site-images.csv.",
                        int(lang, r.site_images.len() as u64),
                        int(lang, r.site_images_total)
                    ),
                    Lang::En => format!(
                        "The table shows the first {} images of {}; the full list is in site-images.csv.",
                        int(lang, r.site_images.len() as u64),
                        int(lang, r.site_images_total)
                    ),
                },
            });
        }
    }
    Section {
        title: t(lang, "Images du site prises", "The site's own images taken"),
        annex: false,
        blocks,
    }
}

pub fn reason_sentence(lang: Lang, signal: &str) -> String {
    let (fr, en) = match signal {
        "robots_disallowed" => ("A demandé des chemins que robots.txt interdit.", "Requested paths that robots.txt forbids."),
        "robots_read_then_disallowed" => ("A lu robots.txt, puis a demandé des chemins qu'il interdit.", "Read robots.txt, then requested paths it forbids."),
        "canary_fetched" => ("A téléchargé des visages canaris, cachés aux visiteurs humains.", "Downloaded canary faces, hidden from human visitors."),
        "trap_fetched" => ("A suivi des liens vers les galeries pièges, invisibles pour un visiteur.", "Followed links into the trap galleries, invisible to a visitor."),
        "gallery_depth" => ("A parcouru les galeries pièges en profondeur, page après page.", "Went deep into the trap galleries, page after page."),
        "opt_out_ignored" => ("A continué après avoir reçu des signaux d'opposition.", "Kept going after receiving opt-out signals."),
        "token_handoff" => ("A téléchargé des canaris créés pour une page vue par un autre client : la liste d'adresses a été transmise.", "Fetched canaries made for a page another client viewed: the list of addresses was handed over."),
        "no_render" => ("Télécharge les images sans les feuilles de style ni les scripts qu'un navigateur charge.", "Fetches images without the stylesheets and scripts a browser loads."),
        "image_rate" => ("Télécharge des images à un rythme qu'aucune personne ne tient en consultant un site.", "Downloads images at a pace no person browsing keeps up."),
        "request_rate" => ("Envoie des requêtes à un rythme élevé.", "Sends requests at a high rate."),
        "regular_timing" => ("Espace ses requêtes avec une régularité de machine.", "Spaces its requests with machine regularity."),
        "browser_headers_missing" => ("N'envoie pas les en-têtes que tout navigateur envoie.", "Does not send the headers every browser sends."),
        "header_order" => ("Envoie ses en-têtes dans un ordre qui ne correspond pas au navigateur annoncé.", "Sends its headers in an order that does not match the browser it claims to be."),
        "known_agent" => ("S'annonce comme un outil connu de collecte d'images.", "Announces itself as a known image-harvesting tool."),
        "search_engine_unverified" => ("Se dit moteur de recherche, mais son adresse ne le confirme pas (DNS inverse).", "Claims to be a search engine, but its address does not confirm it (reverse DNS)."),
        "enumeration" => ("Parcourt les adresses d'images de façon systématique.", "Walks through image addresses systematically."),
        "cluster_addresses" => ("Agit de concert avec d'autres adresses (même empreinte, même rythme).", "Acts together with other addresses (same fingerprint, same rhythm)."),
        other => return visible(other),
    };
    t(lang, fr, en)
}

fn reasons(r: &Report, lang: Lang) -> Section {
    let mut blocks = vec![text(t(
        lang,
        "Les constats du détecteur qui ont conduit au signalement, du plus fort au plus faible. La dernière colonne reproduit le détail tel que le détecteur l'a enregistré (en anglais).",
        "The detector's findings that led to the flag, strongest first. The last column gives the detail as the detector recorded it.",
    ))];
    if r.reasons.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucun motif n'a été enregistré.",
                "No reason was recorded.",
            ),
        });
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Constat", "Finding"), "left", 3, false),
                col(t(lang, "Nombre", "Count"), "right", 0, false),
                col(t(lang, "Poids", "Weight"), "right", 0, false),
                col(
                    t(lang, "Détail enregistré", "Recorded detail"),
                    "left",
                    2,
                    false,
                ),
            ],
            rows: r
                .reasons
                .iter()
                .map(|x| {
                    vec![
                        reason_sentence(lang, &x.signal),
                        int(lang, x.count),
                        fmt::dec(lang, x.score, 1),
                        fmt::cut(lang, &x.detail, 300),
                    ]
                })
                .collect(),
            total: None,
        }));
    }
    blocks.push(Block::Subheading {
        text: t(lang, "Historique du signalement", "History of the flag"),
    });
    if r.history.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucun historique n'a été enregistré.",
                "No history was recorded.",
            ),
        });
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Date", "Date"), "left", 0, false),
                col(t(lang, "Niveau", "Level"), "left", 0, false),
                col(t(lang, "Score", "Score"), "right", 0, false),
                col(t(lang, "Note", "Note"), "left", 1, false),
            ],
            rows: r
                .history
                .iter()
                .map(|h| {
                    vec![
                        fmt::datetime(h.ts_ms),
                        level_name(lang, h.level.as_deref()),
                        fmt::dec(lang, h.score, 1),
                        fmt::cut(lang, &h.note, 600),
                    ]
                })
                .collect(),
            total: None,
        }));
    }
    Section {
        title: t(lang, "Motifs de détection", "Detection reasons"),
        annex: false,
        blocks,
    }
}

fn event_ids(lang: Lang, ids: &[i64]) -> String {
    if ids.is_empty() {
        return "—".into();
    }
    let mut shown: Vec<String> = ids.iter().take(6).map(|&i| format!("#{i}")).collect();
    if ids.len() > 6 {
        shown.push(format!("+{}", int(lang, ids.len() as u64 - 6)));
    }
    shown.join(", ")
}

fn found(r: &Report, lang: Lang) -> Section {
    let mut blocks = Vec::new();
    if r.found.is_empty() {
        blocks.push(Block::Note {
            text: t(
                lang,
                "Aucune image trouvée ailleurs n'a été fournie.",
                "No image found elsewhere was provided.",
            ),
        });
    } else {
        blocks.push(text(t(
            lang,
            "Images trouvées hors du site (par exemple dans un jeu de données publié) et confrontées aux canaris : une correspondance relie l'image trouvée au téléchargement précis qui l'a emportée.",
            "Images found outside the site (in a published data set, for instance) and compared with the canaries: a match ties the image found to the exact download that took it.",
        )));
        blocks.push(Block::Table(Table {
            columns: vec![
                col(t(lang, "Fichier", "File"), "left", 1, true),
                col(t(lang, "Jeton reconnu", "Matched token"), "left", 1, true),
                col(t(lang, "Confiance", "Confidence"), "right", 0, false),
                col(t(lang, "Méthode", "Method"), "left", 0, false),
                col(t(lang, "Téléchargement", "Fetch"), "left", 0, false),
                col(t(lang, "Par l'acteur", "By the actor"), "left", 0, false),
            ],
            rows: r
                .found
                .iter()
                .map(|f| {
                    vec![
                        fmt::cut(lang, &f.file, 200),
                        match (&f.token, f.matched) {
                            (Some(tok), true) => visible(tok),
                            _ => t(lang, "aucun", "none"),
                        },
                        if f.matched {
                            fmt::dec(lang, f.confidence, 2)
                        } else {
                            "—".into()
                        },
                        match f.method.as_str() {
                            "xmp" => t(lang, "marque XMP lue", "XMP mark read"),
                            "hash" => t(lang, "empreinte perceptuelle", "perceptual hash"),
                            other => visible(other),
                        },
                        match lang {
                            Lang::Fr => {
                                event_ids(lang, &f.fetch_event_ids).replace('#', "n°\u{a0}")
                            }
                            Lang::En => event_ids(lang, &f.fetch_event_ids),
                        },
                        if !f.matched {
                            "—".into()
                        } else if f.by_actor {
                            t(lang, "oui", "yes")
                        } else {
                            t(lang, "non", "no")
                        },
                    ]
                })
                .collect(),
            total: None,
        }));
        blocks.push(text(t(
            lang,
            "« Téléchargement » renvoie aux numéros des événements dans events.jsonl. La confiance va de 0 à 1 ; une marque XMP lue vaut identification du jeton.",
            "“Fetch” refers to event numbers in events.jsonl. Confidence runs from 0 to 1; an XMP mark read identifies the token outright.",
        )));
    }
    Section {
        title: t(lang, "Images retrouvées ailleurs", "Images found elsewhere"),
        annex: false,
        blocks,
    }
}

fn key_url(r: &Report) -> String {
    if r.integrity.key_url.is_empty() {
        format!(
            "{}/.well-known/faceprobe-key.pub",
            visible(r.deployment.site.trim_end_matches('/'))
        )
    } else {
        visible(&r.integrity.key_url)
    }
}

fn method(r: &Report, lang: Lang) -> Section {
    let url = key_url(r);
    let d = &r.deployment;
    let every = match (lang, d.checkpoint_minutes) {
        (Lang::Fr, 1) => "Chaque minute".to_string(),
        (Lang::Fr, m) => format!("Toutes les {m} minutes"),
        (Lang::En, 1) => "Every minute".to_string(),
        (Lang::En, m) => format!("Every {m} minutes"),
    };
    let items: Vec<Vec<Span>> = match lang {
        Lang::Fr => vec![
            vec![plain("Chaque requête reçue par le site est enregistrée au moment où elle est servie — date, adresse, agent utilisateur, chemin, réponse — dans une base SQLite sur le serveur du site.")],
            vec![plain("Les enregistrements forment une chaîne de hachage : l'empreinte SHA-256 de chaque événement inclut celle de l'événement précédent, si bien que modifier, insérer ou supprimer un enregistrement change toutes les empreintes qui suivent.")],
            vec![plain(format!("{every}, le serveur signe la tête de la chaîne (point de contrôle) avec une clé Ed25519. La clé publique est publiée sur le site lui-même, à l'adresse ")), mono(url.clone()), plain(" : elle est rattachée au domaine, non à ce dossier.")],
            vec![plain(format!("Les adresses IP des visiteurs ordinaires sont remplacées par un pseudonyme à clé après {} heures.", d.raw_ip_hours))],
            vec![plain("Le dossier ne contient que les enregistrements de cet acteur. Les événements des autres visiteurs qui s'intercalent dans la chaîne n'y figurent que sous forme d'empreintes : ils ne révèlent rien de ces visiteurs, mais permettent de recalculer la chaîne.")],
            vec![plain("Les chaînes envoyées par le client (agents, chemins) sont reproduites telles quelles ; les caractères de contrôle ou de direction d'écriture y sont notés \\u{…} afin de rester visibles.")],
        ],
        Lang::En => vec![
            vec![plain("Every request the site receives is recorded as it is served — time, address, user agent, path, response — in an SQLite database on the site's server.")],
            vec![plain("The records form a hash chain: each event's SHA-256 digest includes the previous event's, so changing, inserting or deleting a record changes every digest after it.")],
            vec![plain(format!("{every} the server signs the head of the chain (a checkpoint) with an Ed25519 key. The public key is published on the site itself, at ")), mono(url), plain(": it is tied to the domain, not to this file.")],
            vec![plain(format!("The IP addresses of ordinary visitors are replaced by a keyed pseudonym after {} hours.", d.raw_ip_hours))],
            vec![plain("The bundle holds this actor's records only. Other visitors' events that fall between them in the chain are present as digests alone: they reveal nothing about those visitors, yet let the chain be recomputed.")],
            vec![plain("Strings sent by the client (agents, paths) are reproduced as sent; control and text-direction characters are written \\u{…} so that they stay visible.")],
        ],
    };
    Section {
        title: t(lang, "Méthode", "Method"),
        annex: false,
        blocks: vec![Block::List { items }],
    }
}

fn proves(r: &Report, lang: Lang) -> Section {
    let found_match = r.found.iter().any(|f| f.matched && f.by_actor);
    let (yes, no): (Vec<&str>, Vec<String>) = match lang {
        Lang::Fr => (
            vec![
                "que des requêtes portant ces adresses, ces agents utilisateurs et ces dates ont été reçues par le site et qu'il y a répondu ;",
                "que ces enregistrements n'ont pas été modifiés depuis les points de contrôle signés ;",
                "que l'acteur a pris des canaris cachés aux personnes, ce qu'un visiteur humain ne fait pas ;",
                "que l'acteur a poursuivi après avoir reçu les signaux d'opposition décrits plus haut.",
            ],
            vec![
                "qui exploite l'adresse : une adresse IP peut être un mandataire (proxy), un VPN ou un hébergeur en nuage ;".into(),
                if found_match {
                    "ce qui a été fait des images au-delà de la copie retrouvée décrite plus haut ;".into()
                } else {
                    "ce qui a été fait des images ensuite, faute d'image retrouvée ailleurs ;".into()
                },
                "l'heure exacte au sens absolu : les dates sont celles de l'horloge du serveur.".into(),
            ],
        ),
        Lang::En => (
            vec![
                "that requests with these addresses, user agents and times were received and answered by the site;",
                "that these records have not been altered since the signed checkpoints;",
                "that the actor took canaries hidden from people, which a human visitor does not do;",
                "that the actor went on after receiving the opt-out signals described above.",
            ],
            vec![
                "who operates the address: an IP address can be a proxy, a VPN or a cloud host;".into(),
                if found_match {
                    "what was done with the images beyond the copy found described above;".into()
                } else {
                    "what was done with the images afterwards, as no image found elsewhere matched;".into()
                },
                "the exact time in an absolute sense: the times are the server's clock.".into(),
            ],
        ),
    };
    let blocks = vec![
        Block::Subheading {
            text: t(lang, "Ce dossier établit", "This file proves"),
        },
        Block::List {
            items: yes.into_iter().map(|s| vec![plain(s)]).collect(),
        },
        Block::Subheading {
            text: t(lang, "Ce dossier n'établit pas", "This file does not prove"),
        },
        Block::List {
            items: no.into_iter().map(|s| vec![plain(s)]).collect(),
        },
    ];
    Section {
        title: t(
            lang,
            "Ce que ce dossier prouve, et ce qu'il ne prouve pas",
            "What this file proves and what it does not",
        ),
        annex: false,
        blocks,
    }
}

fn legal(_r: &Report, lang: Lang) -> Section {
    let intro = t(
        lang,
        "Ce rapport n'est pas un avis juridique. Il rappelle le cadre qu'une autorité de protection des données peut appliquer aux faits constatés ; la qualification appartient à l'autorité.",
        "This report is not legal advice. It recalls the frame a data-protection authority may apply to the facts recorded; the legal assessment is the authority's.",
    );
    let items: Vec<Vec<Span>> = match lang {
        Lang::Fr => vec![
            vec![strong("RGPD, art. 5, paragraphe 1, point a)"), plain(" : les données à caractère personnel sont traitées de manière licite, loyale et transparente. Une collecte cachée, qui passe outre les refus exprimés par le site, se concilie mal avec ce principe.")],
            vec![strong("RGPD, art. 6"), plain(" : un traitement n'est licite que s'il repose sur l'une des bases prévues. Les faits constatés n'en font apparaître aucune : les personnes photographiées n'ont pas consenti, et le site avait expressément refusé la collecte.")],
            vec![strong("RGPD, art. 9"), plain(" : les données biométriques traitées aux fins d'identifier une personne physique de manière unique sont une catégorie particulière de données, dont le traitement est interdit sauf exceptions limitées. Traiter des visages pour constituer une base de reconnaissance faciale relève de cette catégorie.")],
            vec![strong("RGPD, art. 14"), plain(" : lorsque les données ne sont pas collectées auprès de la personne concernée, le responsable du traitement doit l'informer. Rien dans les faits constatés n'indique que les personnes photographiées l'aient été.")],
            vec![strong("Règlement (UE) 2024/1689 sur l'intelligence artificielle, art. 5, paragraphe 1, point e)"), plain(" : sont interdites, depuis le 2 février 2025, la mise sur le marché, la mise en service à cette fin spécifique ou l'utilisation de systèmes d'IA qui créent ou développent des bases de données de reconnaissance faciale par le moissonnage non ciblé d'images faciales provenant de l'internet ou de la vidéosurveillance. La collecte constatée — des visages téléchargés en masse et sans cible — correspond au mode opératoire que vise cette interdiction ; l'usage fait des images reste à établir.")],
            vec![strong("Précédent : CNIL, délibération SAN-2022-019 du 17 octobre 2022"), plain(" : la formation restreinte de la CNIL a prononcé contre Clearview AI une amende de 20 millions d'euros, lui a enjoint de cesser de collecter et de traiter sans base légale les données des personnes se trouvant en France et de les supprimer, sous astreinte ; en 2023, la CNIL a liquidé une astreinte de 5,2 millions d'euros, la société ne s'étant pas conformée à cette injonction.")],
        ],
        Lang::En => vec![
            vec![strong("GDPR Art. 5(1)(a)"), plain(": personal data shall be processed lawfully, fairly and in a transparent manner. Hidden collection that overrides the refusals the site expressed sits ill with this principle.")],
            vec![strong("GDPR Art. 6"), plain(": processing is lawful only on one of the bases it lists. The recorded facts show none: the people photographed did not consent, and the site had expressly refused the collection.")],
            vec![strong("GDPR Art. 9"), plain(": biometric data processed for the purpose of uniquely identifying a natural person is a special category of data, whose processing is prohibited save for narrow exceptions. Processing faces to build a facial recognition database falls within it.")],
            vec![strong("GDPR Art. 14"), plain(": where data is not obtained from the data subject, the controller must inform them. Nothing in the recorded facts suggests that the people photographed were informed.")],
            vec![strong("Regulation (EU) 2024/1689 (AI Act), Art. 5(1)(e)"), plain(": prohibited since 2 February 2025 are the placing on the market, the putting into service for this specific purpose, or the use of AI systems that create or expand facial recognition databases through the untargeted scraping of facial images from the internet or CCTV footage. The collection recorded — faces downloaded in bulk, without a target — matches the method this prohibition addresses; what the images were used for remains to be established.")],
            vec![strong("Precedent: CNIL deliberation SAN-2022-019 of 17 October 2022"), plain(": the CNIL's restricted committee fined Clearview AI EUR 20 million and ordered it to stop collecting and processing, without a lawful basis, the data of people in France and to delete it, under a penalty payment; in 2023 the CNIL imposed a further EUR 5.2 million penalty for failure to comply with that order.")],
        ],
    };
    Section {
        title: t(lang, "Cadre juridique", "Legal frame"),
        annex: false,
        blocks: vec![text(intro), Block::List { items }],
    }
}

fn integrity(r: &Report, lang: Lang) -> Section {
    let i = &r.integrity;
    let source = match i.chain_start_source.as_str() {
        "checkpoint" => t(lang, "un point de contrôle signé", "a signed checkpoint"),
        "genesis" => t(
            lang,
            "le premier événement de la chaîne",
            "the chain's first event",
        ),
        "anchor" => t(
            lang,
            "une ancre de conservation (non signée)",
            "a retention anchor (unsigned)",
        ),
        other => visible(other),
    };
    let rows = vec![
        fact(t(lang, "Événements de l'acteur", "Actor's events"), vec![plain(format!("{} (events.jsonl)", int(lang, i.events)))]),
        fact(
            t(lang, "Segment de chaîne", "Chain segment"),
            vec![plain(match lang {
                Lang::Fr => format!(
                    "de la valeur qui suit l'événement n°\u{a0}{} ({source}) à l'événement n°\u{a0}{}",
                    i.chain_start_after,
                    i.chain_end
                ),
                Lang::En => format!(
                    "from the value after event #{} ({source}) to event #{}",
                    i.chain_start_after,
                    i.chain_end
                ),
            })],
        ),
        fact(
            t(lang, "Autres visiteurs", "Other visitors"),
            vec![plain(match lang {
                Lang::Fr if i.other_events_as_digests < 2 => format!("{} événement présent sous forme d'empreinte seulement", int(lang, i.other_events_as_digests)),
                Lang::Fr => format!("{} événements présents sous forme d'empreintes seulement", int(lang, i.other_events_as_digests)),
                Lang::En if i.other_events_as_digests == 1 => "1 event present as a digest only".to_string(),
                Lang::En => format!("{} events present as digests only", int(lang, i.other_events_as_digests)),
            })],
        ),
        fact(
            t(lang, "Points de contrôle signés", "Signed checkpoints"),
            vec![plain(match lang {
                Lang::Fr => format!("{} (checkpoints.jsonl), le dernier le {}", int(lang, i.checkpoints), fmt::datetime(i.end_checkpoint_ms)),
                Lang::En => format!("{} (checkpoints.jsonl), the last at {}", int(lang, i.checkpoints), fmt::datetime(i.end_checkpoint_ms)),
            })],
        ),
        fact(t(lang, "Tête de chaîne", "Chain head"), vec![mono(or_dash(&i.end_chain))]),
        fact(t(lang, "Empreinte de la clé", "Key fingerprint"), vec![mono(or_dash(&i.key_fingerprint))]),
        fact(t(lang, "Clé publique", "Public key"), vec![mono(or_dash(&i.public_key))]),
        fact(t(lang, "Publiée à", "Published at"), vec![mono(key_url(r))]),
    ];
    let steps = t(
        lang,
        "Pour vérifier, dans le dossier décompressé : la première commande contrôle chaque fichier contre SHA256SUMS ; la deuxième vérifie la signature du manifeste avec la clé publique (allowed_signers) ; la troisième recalcule la chaîne et contrôle les points de contrôle signés, sans faceprobe. Comparez enfin l'empreinte de la clé avec celle de la clé publiée sur le site.",
        "To verify, in the unpacked bundle: the first command checks every file against SHA256SUMS; the second checks the manifest's signature with the public key (allowed_signers); the third recomputes the chain and checks the signed checkpoints, without faceprobe. Finally, compare the key's fingerprint with that of the key published on the site.",
    );
    Section {
        title: t(lang, "Intégrité", "Integrity"),
        annex: false,
        blocks: vec![
            Block::Facts { rows },
            text(steps),
            Block::Commands {
                lines: vec![
                    "sha256sum -c SHA256SUMS".into(),
                    "ssh-keygen -Y verify -f allowed_signers -I faceprobe -n faceprobe-evidence -s manifest.sig < manifest.json".into(),
                    "python3 verify.py".into(),
                    format!("curl -s {} | ssh-keygen -lf -", key_url(r)),
                ],
            },
        ],
    }
}

/// The French text for the CNIL's complaint form: in both reports, since the CNIL works in
/// French; the complainant's identity and prior steps are left as marked blanks.
fn annex(r: &Report, lang: Lang) -> Section {
    let fr = Lang::Fr;
    let a = &r.activity;
    let addrs = addresses_phrase(r, fr);
    let agent = match top_agent(r) {
        Some(ag) if !ag.agent.is_empty() => format!(
            "l'agent utilisateur {}",
            quote(fr, &fmt::cut(fr, &ag.agent, 90))
        ),
        _ => "aucun agent utilisateur".into(),
    };
    let site = or_dash(&r.deployment.site);
    let ignored: Vec<String> = r
        .opt_outs
        .iter()
        .filter(|o| o.ignored > 0)
        .map(|o| match o.signal.as_str() {
            "robots_txt" => format!(
                "robots.txt (enfreint {} fois)",
                int(fr, a.robots_violations)
            ),
            "x_robots_tag" => format!("en-tête X-Robots-Tag {}", quote(fr, &visible(&o.value))),
            "tdm_reservation" => format!(
                "protocole TDM Reservation (tdm-reservation: {})",
                visible(&o.value)
            ),
            "xmp_data_mining" => {
                "métadonnée PLUS plus:DataMining = DMI-PROHIBITED inscrite dans les images".into()
            }
            other => visible(other),
        })
        .collect();
    let canaries = a.distinct_canaries.max(r.canaries.len() as u64);
    let mut facts = format!(
        "Du {} au {}, un robot utilisant {} {} IP ({addrs}) et {agent} a envoyé {} requêtes au site {site}, exploité par {}. Il a téléchargé {} photographies publiées par le site, sur lesquelles figurent des personnes, ainsi que {} visages synthétiques « canaris » cachés aux visiteurs humains, ce qui caractérise une collecte automatisée et systématique d'images de visages.",
        fmt::datetime(r.actor.first_ms),
        fmt::datetime(r.actor.last_ms),
        int(fr, r.actor.addresses.len() as u64),
        plural(fr, r.actor.addresses.len() as u64, "adresse", "adresses"),
        int(fr, a.requests),
        or_dash(&r.deployment.operator),
        int(fr, r.site_images_total),
        int(fr, canaries),
    );
    if !ignored.is_empty() {
        facts += &format!(
            " Le site lui avait signifié son opposition, ce qu'il a ignoré : {}.",
            join_and(fr, &ignored)
        );
    }
    if r.found.iter().any(|f| f.matched && f.by_actor) {
        facts +=
            " Une image retrouvée hors du site correspond à un canari téléchargé par ce robot.";
    }
    let mut blocks = Vec::new();
    if lang == Lang::En {
        blocks.push(text("This annex is in French, as the CNIL works in French: it is the text to paste into the CNIL's online complaint form, once the bracketed fields are filled in."));
    }
    blocks.push(text("La CNIL ne peut instruire une plainte qui ne fait apparaître ni l'identité du plaignant ni les démarches effectuées au préalable auprès de l'organisme mis en cause. Les champs correspondants sont laissés en blanc, entre crochets et surlignés : remplissez-les avant d'envoyer le texte, et joignez-y le dossier de preuve."));
    blocks.push(Block::Paste {
        paras: vec![
            vec![strong("Plaignant : "), blank("[Nom, prénom ou raison sociale du plaignant]")],
            vec![strong("Adresse : "), blank("[Adresse]")],
            vec![strong("Courriel et téléphone : "), blank("[Courriel, téléphone]")],
            vec![strong("Qualité : "), blank("[Exploitant du site, personne photographiée, représentant…]")],
            vec![
                strong("Organisme mis en cause : "),
                blank("[Nom de l'organisme, s'il est connu]"),
                plain(format!(", qui opère depuis les adresses IP {addrs}.")),
            ],
            vec![
                strong("Démarches préalables : "),
                blank("[Démarches préalables effectuées auprès de l'organisme : date, moyen, réponse reçue]"),
            ],
            vec![strong("Faits. "), plain(facts)],
            vec![plain(format!(
                "Ces faits sont consignés dans le dossier de preuve {}, créé le {} par l'outil faceprobe {} : chaque requête y est enregistrée dans une chaîne de hachage SHA-256 dont la tête est signée (Ed25519) à intervalles réguliers ; la clé publique est publiée à l'adresse {}. Le dossier est joint à la présente plainte.",
                or_dash(&r.bundle_id),
                fmt::datetime(r.created_ms),
                visible(&r.tool_version),
                key_url(r)
            ))],
            vec![plain("Je demande à la CNIL d'examiner ce traitement au regard des articles 5, 6, 9 et 14 du RGPD et de l'article 5, paragraphe 1, point e), du règlement (UE) 2024/1689 sur l'intelligence artificielle, et d'en tirer les conséquences.")],
            vec![plain("Fait à "), blank("[Lieu]"), plain(", le "), blank("[Date]"), plain(". "), blank("[Signature]")],
        ],
    });
    Section {
        title: "Annexe — texte pour le formulaire de plainte de la CNIL".into(),
        annex: true,
        blocks,
    }
}
