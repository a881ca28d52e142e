//! The module tree has no import circle (between a crate's top-level
//! modules, nor between two modules of one folder), and the sidecar's
//! modules are declared in the order data flows: each imports only modules
//! above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lumen_tests::workspace_root;

/// Every `.rs` file under `path` (or `path` itself).
fn sources(path: &Path, out: &mut Vec<String>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("readable source dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for entry in entries {
            sources(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(std::fs::read_to_string(path).expect("readable source"));
    }
}

/// The `crate::NAME` references in code (comments left out).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Top-level module → the other top-level modules it imports.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut texts = Vec::new();
        sources(&path, &mut texts);
        let refs: BTreeSet<String> = texts.iter().flat_map(|t| crate_references(t)).collect();
        modules
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(refs);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    for (name, refs) in &mut modules {
        refs.retain(|r| r != name && names.contains(r));
    }
    modules
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle() {
    for krate in ["lumen-middleware", "lumen-sidecar", "examples", "bench"] {
        let graph = module_graph(&workspace_root().join(krate).join("src"));
        assert!(graph.len() > 1 || krate == "bench", "{krate}: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: import circle {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_sidecar_declares_its_modules_in_the_order_data_flows() {
    let root = workspace_root().join("lumen-sidecar/src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("lib.rs");
    let order: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect();
    let graph = module_graph(&root);
    assert_eq!(
        order.iter().cloned().collect::<BTreeSet<_>>(),
        graph.keys().cloned().collect::<BTreeSet<_>>(),
        "lib.rs declares every module"
    );
    for (i, module) in order.iter().enumerate() {
        for import in &graph[module] {
            let at = order.iter().position(|m| m == import).expect("declared");
            assert!(
                at < i,
                "{module} imports {import}, which lib.rs declares after it"
            );
        }
    }
    // Nothing but the command line builds the sidecar.
    for (module, imports) in &graph {
        assert!(
            module == "cli" || !imports.contains("sidecar"),
            "{module} imports the composition root"
        );
    }
}

#[test]
fn the_graph_reader_sees_imports_and_skips_comments() {
    let refs =
        crate_references("use crate::app::AppState; // crate::server\nlet x = crate::eval::x();");
    assert_eq!(
        refs,
        ["app", "eval"].map(String::from).into_iter().collect()
    );
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
}

/// The names that follow `prefix` in code (comments left out), with
/// `prefix{a, b::c}` giving `a` and `b`.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    // `super::super::` reaches the grandparent: not a `super::` sibling.
    let code = if prefix == "super::" {
        code.replace("super::super::", "grandparent::")
    } else {
        code
    };
    let mut rest = code.as_str();
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.insert(ident(&item));
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

/// A folder's child modules → the sibling modules each imports (through
/// `super::`, `super::super::` from a child folder's files, or the full
/// `crate::` path `module_path`).
fn folder_graph(dir: &Path, module_path: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if ["mod", "lib", "main"].contains(&name.as_str()) {
            continue;
        }
        let mut refs = BTreeSet::new();
        let full = format!("{module_path}::");
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).expect("child folder") {
                let inner = inner.expect("entry").path();
                let mut texts = Vec::new();
                sources(&inner, &mut texts);
                let is_mod = inner.file_stem().is_some_and(|s| s == "mod");
                for text in texts {
                    let up = if is_mod { "super::" } else { "super::super::" };
                    refs.extend(names_after(&text, up));
                    refs.extend(names_after(&text, &full));
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            refs.extend(names_after(&text, "super::"));
            refs.extend(names_after(&text, &full));
        } else {
            continue;
        }
        graph.insert(name, refs);
    }
    // An item the folder's `mod.rs` re-exports (`pub use state::AppState`)
    // is its module's: `super::AppState` imports `state`.
    let reexports = std::fs::read_to_string(dir.join("mod.rs"))
        .map(|text| reexported_items(&text))
        .unwrap_or_default();
    let names: BTreeSet<String> = graph.keys().cloned().collect();
    for (name, refs) in &mut graph {
        let through: Vec<String> = refs
            .iter()
            .filter_map(|r| reexports.get(r).cloned())
            .collect();
        refs.extend(through);
        refs.retain(|r| r != name && names.contains(r));
    }
    graph
}

/// `pub use MODULE::{A, B};` and `pub use MODULE::A;` in a `mod.rs`: item
/// → the module it comes from.
fn reexported_items(text: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    let mut rest = text;
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        let Some((module, tail)) = statement.split_once("::") else {
            continue;
        };
        let tail = tail.trim().trim_start_matches('{').trim_end_matches('}');
        for item in tail.split(',') {
            let item = item.trim();
            let name = item.rsplit(" as ").next().unwrap_or(item).trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                items.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    items
}

/// Every folder of a crate's source, with its `crate::` path.
fn folders(dir: &Path, module_path: &str, out: &mut Vec<(std::path::PathBuf, String)>) {
    out.push((dir.to_path_buf(), module_path.to_owned()));
    for entry in std::fs::read_dir(dir).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let name = path.file_name().expect("a name").to_string_lossy();
            folders(&path, &format!("{module_path}::{name}"), out);
        }
    }
}

#[test]
fn no_two_modules_of_one_folder_import_each_other() {
    let mut circles = Vec::new();
    for krate in ["lumen-middleware", "lumen-sidecar", "examples", "bench"] {
        let mut all = Vec::new();
        folders(&workspace_root().join(krate).join("src"), "crate", &mut all);
        for (dir, module_path) in all {
            if module_path == "crate" {
                continue; // the crate root: the test above
            }
            if let Some(cycle) = find_cycle(&folder_graph(&dir, &module_path)) {
                circles.push(format!("{krate}: {module_path}: {}", cycle.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_folder_reader_sees_super_and_grouped_imports() {
    let text = "use super::{state::AppState, wal};\nuse super::super::eval;\nlet a = crate::app::clock::now();\n// super::hidden\n";
    assert_eq!(
        names_after(text, "super::"),
        ["state", "wal"].map(String::from).into_iter().collect()
    );
    assert_eq!(
        names_after(text, "crate::app::"),
        ["clock"].map(String::from).into_iter().collect()
    );
    let reexports = reexported_items(
        "pub use state::{AppState, IngestError};\npub use clock::now_ms;\npub use a::b::C as D;\n",
    );
    assert_eq!(reexports["AppState"], "state");
    assert_eq!(reexports["now_ms"], "clock");
    assert_eq!(reexports["D"], "a");
}
