//! The shape of src/: no two modules depend on each other. At every level of the module
//! tree, the children of one parent (`chat` and `question` under the crate, `chats` and
//! `questions` under `store`) form a graph by what their code names of each other, and that
//! graph must have no cycle. A parent and its own children may name each other (`chat/mod.rs`
//! declares `chat::plan`, which uses the parent's `Member`): that is one module's inside.
//!
//! Read with `syn`, not grep: `use crate::{a, b::c}` groups, `super::` paths and names brought
//! in by `use` (`store::chats::append` after `use crate::store`) all count. Code under
//! `#[cfg(test)]` does not: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

type ModPath = Vec<String>;

#[test]
fn no_module_in_src_depends_on_a_module_that_depends_back_on_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules_under(&src);
    let known: BTreeSet<ModPath> = modules.iter().map(|(path, _)| path.clone()).collect();

    let mut edges: BTreeSet<(ModPath, ModPath)> = BTreeSet::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut refs = References::new(module);
        refs.visit_file(&ast);
        for target in refs.resolved() {
            if let Some(target) = longest_known_prefix(&target, &known)
                && &target != module
            {
                edges.insert((module.clone(), target));
            }
        }
    }

    let mut cycles = Vec::new();
    for parent in &known {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &edges {
            let (Some(a), Some(b)) = (child_of(parent, from), child_of(parent, to)) else {
                continue;
            };
            if a != b {
                graph.entry(a).or_default().insert(b);
            }
        }
        for component in strongly_connected(&graph) {
            let at = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            let evidence: Vec<String> = edges
                .iter()
                .filter(|(from, to)| {
                    matches!((child_of(parent, from), child_of(parent, to)),
                        (Some(a), Some(b)) if a != b && component.contains(&a) && component.contains(&b))
                })
                .map(|(from, to)| format!("{} -> {}", from.join("::"), to.join("::")))
                .collect();
            cycles.push(format!(
                "under {at}: {{{}}}\n    {}",
                component.into_iter().collect::<Vec<_>>().join(", "),
                evidence.join("\n    ")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "module cycles in src/:\n{}",
        cycles.join("\n")
    );
}

/// Every module of the library with the file that holds it (src/bin is other crates).
fn modules_under(src: &Path) -> Vec<(ModPath, PathBuf)> {
    let mut out = vec![(Vec::new(), src.join("lib.rs"))];
    let mut stack = vec![(Vec::<String>::new(), src.to_path_buf())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue;
                }
                let mut module = prefix.clone();
                module.push(name);
                if path.join("mod.rs").exists() {
                    out.push((module.clone(), path.join("mod.rs")));
                }
                stack.push((module, path));
            } else if path.extension().is_some_and(|e| e == "rs")
                && !matches!(name.as_str(), "mod" | "lib" | "main")
            {
                let mut module = prefix.clone();
                module.push(name);
                out.push((module, path));
            }
        }
    }
    out
}

fn longest_known_prefix(path: &[String], known: &BTreeSet<ModPath>) -> Option<ModPath> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// The child of `parent` that `module` lies in, if `module` lies strictly under `parent`.
fn child_of(parent: &[String], module: &[String]) -> Option<String> {
    (module.len() > parent.len() && module.starts_with(parent))
        .then(|| module[parent.len()].clone())
}

/// Paths a file names, made absolute (`crate::...`).
struct References {
    module: ModPath,
    imported: HashMap<String, ModPath>,
    named: Vec<Vec<String>>,
}

impl References {
    fn new(module: &ModPath) -> Self {
        References {
            module: module.clone(),
            imported: HashMap::new(),
            named: Vec::new(),
        }
    }

    fn absolute(&self, segments: &[String]) -> Option<ModPath> {
        let (first, rest) = segments.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some([self.module.clone(), rest.to_vec()].concat()),
            "super" => {
                let mut base = self.module.clone();
                base.pop();
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some([base, rest.to_vec()].concat())
            }
            name => {
                let imported = self.imported.get(name)?;
                Some([imported.clone(), rest.to_vec()].concat())
            }
        }
    }

    fn resolved(&self) -> Vec<ModPath> {
        self.named
            .iter()
            .filter_map(|segments| self.absolute(segments))
            .collect()
    }

    fn use_tree(&mut self, prefix: Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut prefix = prefix;
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
            }
            syn::UseTree::Name(n) => {
                self.imported_as(prefix, n.ident.to_string(), n.ident.to_string())
            }
            syn::UseTree::Rename(r) => {
                self.imported_as(prefix, r.ident.to_string(), r.rename.to_string())
            }
            syn::UseTree::Glob(_) => self.named.push(prefix),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix.clone(), tree);
                }
            }
        }
    }

    fn imported_as(&mut self, mut prefix: Vec<String>, ident: String, alias: String) {
        if ident != "self" {
            prefix.push(ident);
        }
        self.named.push(prefix.clone());
        if let Some(absolute) = self.absolute(&prefix) {
            self.imported.insert(alias, absolute);
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

impl<'ast> Visit<'ast> for References {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Impl(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.named
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`json!`, `tracing::info!`) are only tokens to syn: read the
        // `a::b::c` runs out of their text so they count too.
        let text = mac.tokens.to_string().replace(" :: ", "::");
        for piece in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if piece.contains("::") {
                let segments: Vec<String> = piece
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                self.named.push(segments);
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// Components of more than one node (Tarjan's algorithm).
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: HashMap<String, usize>,
        low: HashMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        out: Vec<BTreeSet<String>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, node: &str) {
            let i = self.index.len();
            self.index.insert(node.to_string(), i);
            self.low.insert(node.to_string(), i);
            self.stack.push(node.to_string());
            self.on_stack.insert(node.to_string());
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node.to_string(), low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node.to_string(), low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(&top);
                    let done = top == node;
                    component.insert(top);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.out.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.out
}
