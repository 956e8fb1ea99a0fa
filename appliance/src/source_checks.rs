//! Checks over weir's own sources, run with the unit tests: no import cycle between modules,
//! neither between files (`rates::alerts` and `rates::heavy_hitters`) nor between top-level
//! modules (`flow` and `scoring`); no file over [`MAX_FILE_LINES`] lines before its unit
//! tests; no function over [`MAX_FN_LINES`] lines without a `// Long: why` line at its head.
//!
//! A module depends on another when its code (not its comments, not its test module) names a
//! path into it: `crate::a::b::Item`, `super::b::Item`, `use super::{b, c::Item}`. A parent and
//! its children are not counted (a parent declares and re-exports its children; a child uses
//! its parent's items), so a dependency taken through a parent's re-export counts as one on
//! the parent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a source file may have before its `#[cfg(test)]` part.
const MAX_FILE_LINES: usize = 600;
/// Lines a function may have without a reason written at its head.
const MAX_FN_LINES: usize = 120;

/// Every library source file by module path (`""` for `lib.rs`, `metrics::encode`); the
/// binary's `main.rs` and test-only files (`tests.rs`) are left out.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, root, out);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rs") || name == "main.rs" || name == "tests.rs" {
                continue;
            }
            let rel = p.strip_prefix(root).expect("under src").with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.insert(parts.join("::"), p);
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// A file's code: up to its test module, without `//` comments.
fn code(text: &str) -> String {
    let end = text.find("\n#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers of a path starting at `s` (`a::b::Item`), and the rest of `s`.
fn path_at(mut s: &str) -> (Vec<String>, &str) {
    let mut segs = Vec::new();
    loop {
        let n = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
        if n == 0 {
            break;
        }
        segs.push(s[..n].to_string());
        s = &s[n..];
        match s.strip_prefix("::") {
            Some(rest) if rest.starts_with(is_ident) => s = rest,
            _ => break,
        }
    }
    (segs, s)
}

/// The paths `code` names from `crate::` or `super::`, each resolved to segments from the
/// crate root (`me` is the file's own module path). A group (`use super::{a, b::C}`) gives one
/// path per member.
fn references(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(i) = rest.find(['c', 's']) else {
            break;
        };
        let start = at + i;
        at = start + 1;
        if code[..start].ends_with(is_ident) {
            continue;
        }
        let (mut segs, tail) = path_at(&code[start..]);
        let mut base: Vec<String> = match segs.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => me[..me.len().saturating_sub(1)].to_vec(),
            _ => continue,
        };
        segs.remove(0);
        while segs.first().map(String::as_str) == Some("super") {
            base.pop();
            segs.remove(0);
        }
        let prefix: Vec<String> = base.into_iter().chain(segs).collect();
        match tail.strip_prefix("::{") {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for member in group.split(',') {
                    let (m, _) = path_at(member.trim());
                    out.push(prefix.iter().cloned().chain(m).collect());
                }
            }
            None => out.push(prefix),
        }
    }
    out
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module -> the modules it depends on (parents and children apart).
fn dependencies() -> Graph {
    let mods = modules();
    let mut g = Graph::new();
    for (m, path) in &mods {
        let me: Vec<String> = m
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let text = std::fs::read_to_string(path).expect("read source");
        for segs in references(&code(&text), &me) {
            // The longest prefix that is a module.
            let Some(target) = (0..=segs.len())
                .rev()
                .map(|k| segs[..k].join("::"))
                .find(|c| mods.contains_key(c))
            else {
                continue;
            };
            let t: Vec<&str> = target.split("::").filter(|s| !s.is_empty()).collect();
            let related = t.iter().zip(&me).all(|(a, b)| a == b);
            if !related {
                g.entry(m.clone()).or_default().insert(target);
            }
        }
    }
    g
}

/// The strongly connected components of more than one node (Tarjan): the cycles.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The edges inside each cycle, to say where to cut.
fn explain(g: &Graph, found: &[Vec<String>]) -> String {
    let mut s = String::new();
    for c in found {
        s.push_str(&format!("cycle {c:?}:\n"));
        for a in c {
            for b in g.get(a).into_iter().flatten().filter(|b| c.contains(b)) {
                s.push_str(&format!("  {a} -> {b}\n"));
            }
        }
    }
    s
}

#[test]
fn no_import_cycle_between_modules() {
    let g = dependencies();
    assert!(g.len() > 20, "too few modules found: {g:?}");
    let found = cycles(&g);
    assert!(found.is_empty(), "{}", explain(&g, &found));

    // The same between top-level modules (`flow/` and `scoring/` as wholes).
    let mut top = Graph::new();
    for (a, bs) in &g {
        for b in bs {
            let (ta, tb) = (a.split("::").next(), b.split("::").next());
            if let (Some(ta), Some(tb)) = (ta, tb) {
                if ta != tb && !ta.is_empty() && !tb.is_empty() {
                    top.entry(ta.to_string())
                        .or_default()
                        .insert(tb.to_string());
                }
            }
        }
    }
    let found = cycles(&top);
    assert!(found.is_empty(), "{}", explain(&top, &found));
}

#[test]
fn the_reader_sees_paths_groups_and_supers() {
    let me: Vec<String> = vec!["rates".into(), "alerts".into()];
    let refs = references(
        &code("use super::key::HhKey;\nuse super::{config, tables::Tick};\nlet x = crate::flow::record::FlowRecord::default(); // crate::ignored\nsupercrate::no"),
        &me,
    );
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(
        refs,
        [
            "rates::key::HhKey",
            "rates::config",
            "rates::tables::Tick",
            "flow::record::FlowRecord::default",
        ]
    );
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("c".into()).or_default().insert("d".into());
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}

#[test]
fn files_and_functions_stay_short() {
    let mut long = Vec::new();
    for path in modules().values() {
        let text = std::fs::read_to_string(path).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        let code = lines
            .iter()
            .position(|l| l.starts_with("#[cfg(test)]"))
            .unwrap_or(lines.len());
        if code > MAX_FILE_LINES {
            long.push(format!("{}: {code} lines before its tests", path.display()));
        }
        for (i, l) in lines[..code].iter().enumerate() {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "pub unsafe fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn || t.ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            let Some(len) = lines[i..code].iter().position(|x| *x == close) else {
                continue;
            };
            // The reason: a `// Long:` line among the comments and attributes above it.
            let reason = lines[..i]
                .iter()
                .rev()
                .take_while(|x| {
                    let x = x.trim_start();
                    x.starts_with("//") || x.starts_with("#[")
                })
                .any(|x| x.trim_start().starts_with("// Long:"));
            if len + 1 > MAX_FN_LINES && !reason {
                long.push(format!(
                    "{}:{}: a function of {} lines",
                    path.display(),
                    i + 1,
                    len + 1
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into named steps, or say why not at the head (`// Long: ...`):\n{}",
        long.join("\n")
    );
}
