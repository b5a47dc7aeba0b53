//! Modules depend one way, along the data flow of docs/architecture.md: this test reads every
//! file under `src/` and fails, naming the file, the line and the import, when a module refers
//! to one its row of the table below does not allow. Tests (`#[cfg(test)]` items and files)
//! may reach further: a test may import whatever it exercises.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each module may import (besides itself), lowest first; the same table is in
/// docs/architecture.md. `main` is `src/main.rs`, which reaches the library as `faceprobe::`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("metrics", &[]),
    ("store", &[]),
    ("logging", &["config"]),
    ("canary", &["store", "config"]),
    ("record", &["store", "config", "metrics"]),
    ("detect", &["record", "store", "config", "metrics"]),
    (
        "edge",
        &["canary", "record", "detect", "store", "config", "metrics"],
    ),
    (
        "evidence",
        &["record", "canary", "detect", "store", "config"],
    ),
    ("fleet", &["record", "canary", "store", "config", "metrics"]),
    (
        "review",
        &[
            "evidence", "fleet", "canary", "detect", "store", "config", "metrics",
        ],
    ),
    (
        "cmd",
        &[
            "canary", "config", "detect", "edge", "evidence", "fleet", "logging", "metrics",
            "record", "review", "store",
        ],
    ),
    ("main", &["cmd", "config", "logging"]),
];

/// One reference of a module to another.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    line: usize,
    module: String,
    text: String,
}

/// The source with comments and the insides of string and character literals blanked out
/// (line breaks kept), so that only code is searched and braces can be counted.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(c.len());
    let blank = |out: &mut Vec<char>, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    blank(&mut out, c[i]);
                    blank(&mut out, c[i + 1]);
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    blank(&mut out, c[i]);
                    blank(&mut out, c[i + 1]);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && !prev_ident
            && matches!(c.get(i + 1), Some('"') | Some('#'))
            && raw_string_end(&c, i + 1).is_some()
        {
            let end = raw_string_end(&c, i + 1).unwrap_or(c.len());
            while i < end {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\''), not a lifetime.
            blank(&mut out, c[i]);
            i += 1;
            if c.get(i) == Some(&'\\') {
                blank(&mut out, c[i]);
                i += 1;
            }
            while i < c.len() && c[i] != '\'' {
                blank(&mut out, c[i]);
                i += 1;
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Where a raw string starting at `at` (its `#`s or its `"`) ends, exclusive.
fn raw_string_end(c: &[char], at: usize) -> Option<usize> {
    let mut i = at;
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if c.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    None
}

/// Blanks every item marked `#[cfg(test)]` (a module, a function, a `use`); returns the
/// names of the test-only modules declared as files (`#[cfg(test)] mod name;`).
fn without_tests(code: &mut [char]) -> Vec<String> {
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut test_files = Vec::new();
    let mut i = 0;
    while i + marker.len() <= code.len() {
        if code[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + marker.len();
        let mut depth = 0usize;
        let mut end = code.len();
        while j < code.len() {
            match code[j] {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let item: String = code[start..end].iter().collect();
        let words: Vec<&str> = item
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if item.trim_end().ends_with(';') {
            if let Some(p) = words.iter().position(|w| *w == "mod") {
                test_files.extend(words.get(p + 1).map(|w| w.to_string()));
            }
        }
        for ch in &mut code[start..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = end;
    }
    test_files
}

/// The module path of a file: `src/detect/signals/robots.rs` is `[detect, signals, robots]`,
/// `src/record/mod.rs` is `[record]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts
}

/// Every reference to a top-level module in `code`: `crate::m`, `crate::{m, …}`, a path that
/// climbs out of the file's module with `super::` (as `super::super::m`), and, in the binary
/// (`main.rs`, `cmd`), `faceprobe::m`.
fn imports(code: &str, path: &[String], binary: bool) -> Vec<Import> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
        let mut i = 0;
        while i < chars.len() {
            if i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':') {
                i += 1;
                continue;
            }
            let rest: String = chars[i..].iter().collect();
            let mut targets = Vec::new();
            let mut consumed = 1;
            let root = ["crate::"]
                .into_iter()
                .chain(binary.then_some("faceprobe::"))
                .find(|r| rest.starts_with(r));
            if let Some(root) = root {
                let after = &rest[root.len()..];
                if let Some(group) = after.strip_prefix('{') {
                    targets.extend(group_heads(group, code, n));
                } else {
                    targets.extend(head(after));
                }
                consumed = root.len();
            } else if rest.starts_with("super::") {
                let mut supers = 0;
                let mut after = rest.as_str();
                while let Some(a) = after.strip_prefix("super::") {
                    supers += 1;
                    after = a;
                }
                // A file at depth d is module path[..d]; each super climbs one level.
                if supers >= path.len() {
                    targets.extend(head(after));
                } else if supers > 0 {
                    targets.push(path[0].clone());
                }
                consumed = rest.len() - after.len();
            }
            for module in targets {
                found.push(Import {
                    line: n + 1,
                    module,
                    text: line.trim().to_string(),
                });
            }
            i += consumed.max(1);
        }
    }
    found
}

/// The first identifier of a path.
fn head(s: &str) -> Option<String> {
    let name: String = s
        .chars()
        .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The first identifier of each item of a `{…}` group, which may span lines (`rest` is the
/// text after the `{` on line `n` of `code`).
fn group_heads(rest: &str, code: &str, n: usize) -> Vec<String> {
    let mut text = rest.to_string();
    for line in code.lines().skip(n + 1) {
        if text.contains('}') {
            break;
        }
        text.push_str(line);
    }
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (i, ch) in text.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            ch if item_start && (ch.is_alphanumeric() || ch == '_') => {
                heads.extend(head(&text[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import under `src` that its module's row does not allow, as `file:line: text`.
fn wrong_way(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let top_modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(src, f).first().cloned())
        .collect();
    let mut sources = Vec::new();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let mut code: Vec<char> = code_only(&text).chars().collect();
        let dir = match file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            true => file.parent().expect("a folder").to_path_buf(),
            false => file.with_extension(""),
        };
        for name in without_tests(&mut code) {
            test_only.insert(dir.join(format!("{name}.rs")));
            test_only.insert(dir.join(name).join("mod.rs"));
        }
        sources.push((file.clone(), code.into_iter().collect::<String>()));
    }
    let mut wrong = Vec::new();
    for (file, code) in sources {
        let path = module_path(src, &file);
        let Some(module) = path.first() else { continue };
        if module == "lib" || test_only.contains(&file) {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(m, _)| m == module)
            .unwrap_or_else(|| {
                panic!(
                    "{} is in no row of the table: add `{module}` to ALLOWED (and to \
                     docs/architecture.md)",
                    file.display()
                )
            })
            .1;
        let binary = module == "main" || module == "cmd";
        for import in imports(&code, &path, binary) {
            let known = top_modules.contains(&import.module);
            if known && import.module != *module && !allowed.contains(&import.module.as_str()) {
                wrong.push(format!(
                    "{}:{}: `{module}` may not import `{}`: {}",
                    file.display(),
                    import.line,
                    import.module,
                    import.text
                ));
            }
        }
    }
    wrong
}

#[test]
fn modules_import_only_what_their_row_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let wrong = wrong_way(&src);
    assert!(
        wrong.is_empty(),
        "imports that go the wrong way (see docs/architecture.md, \"What each module may \
         import\"):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_documented_table_is_the_tested_one() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    for (module, allowed) in ALLOWED {
        let name = match *module {
            "main" => "`main.rs`".to_string(),
            m => format!("`{m}`"),
        };
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name} in docs/architecture.md"));
        let cell = row.split('|').nth(2).unwrap_or_default().trim();
        let documented: BTreeSet<&str> = match cell {
            "—" => BTreeSet::new(),
            "everything" => ALLOWED
                .iter()
                .map(|(m, _)| *m)
                .filter(|m| *m != "main" && m != module)
                .collect(),
            cell => cell
                .split(',')
                .map(|m| m.trim().trim_matches('`'))
                .collect(),
        };
        let tested: BTreeSet<&str> = allowed.iter().copied().collect();
        assert_eq!(
            documented, tested,
            "the row of {name} in docs/architecture.md"
        );
    }
}

/// The checker itself: a wrong import is found, with its line; tests, comments and strings
/// are not read as imports.
#[test]
fn a_wrong_import_is_found_and_tests_comments_and_strings_are_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("store")).unwrap();
    std::fs::create_dir_all(src.join("detect")).unwrap();
    std::fs::write(src.join("detect/mod.rs"), "pub struct Client;\n").unwrap();
    std::fs::write(
        src.join("store/mod.rs"),
        "//! Not `crate::detect` in a comment.\n\
         pub mod clients;\n\
         const S: &str = \"crate::detect::Client\";\n\
         const R: &str = r#\"use crate::detect;\"#;\n\
         #[cfg(test)]\n\
         mod tests {\n    use crate::detect::Client;\n    fn f() { let _ = '{'; }\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("store/clients.rs"),
        "use super::StoreError;\n\
         use crate::{store::X,\n    detect::Client};\n\
         fn f() -> super::super::detect::Client { todo!() }\n",
    )
    .unwrap();
    std::fs::write(src.join("config.rs"), "").unwrap();
    let wrong = wrong_way(src);
    assert_eq!(wrong.len(), 2, "{wrong:#?}");
    assert!(
        wrong[0].ends_with("clients.rs:2: `store` may not import `detect`: use crate::{store::X,")
    );
    assert!(wrong[1].contains("clients.rs:4: `store` may not import `detect`"));
}
