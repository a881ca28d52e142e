//! The module tree has no import circle, and the sidecar's modules are
//! declared in the order data flows: each imports only modules above it.

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
    // Nothing but main builds the sidecar.
    assert!(graph.values().all(|imports| !imports.contains("sidecar")));
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
