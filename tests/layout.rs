//! The crate's top-level modules must import each other without cycles.
//!
//! Every module should read like a layer: `layer`, `service` and `future` at
//! the top, `error`, `clock` and `pkce` at the bottom, each importing only
//! from below. Then a module can be understood, tested and changed knowing
//! only what it imports. rustc accepts cycles between modules of one crate,
//! so nothing else stops them coming back one innocent `use` at a time: this
//! test does.
//!
//! How it checks, with `std` only: every file under `src/` goes through a
//! small tokenizer that drops comments (doc comments included: an intra-doc
//! link such as ``[`X`](crate::a::X)`` is not an import) and literals. What
//! remains is searched for `use` trees (nested groups, `self`, `as`, `*`)
//! and for bare `crate::a::…` paths in code. A node is a top-level module:
//! `src/a.rs`, or `src/a/` with everything under it. `src/lib.rs` is the
//! root, not a node; a name it re-exports (`crate::Client`) counts as an
//! import of the module that defines it. `super::` paths stay inside their
//! node.
//!
//! One exception: the Tower trio (see [`TOWER_TRIO`]) may form a cycle among
//! themselves. Any other strongly connected set of modules fails
//! `modules_do_not_import_each_other_in_a_cycle`, with every cycle and the
//! file, line and path behind each of its edges.
//! `cargo test --test layout the_graph_points_down -- --nocapture` prints the
//! modules in layers, top first.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

/// The modules allowed to import each other in a loop: the Tower `Layer`,
/// its `Builder` and the `Service` it makes are one public API split across
/// three files (the layer makes the service and hands out the builder, the
/// builder makes the layer, the service names the layer in its docs and
/// types). A cycle that leaves these three is still refused.
const TOWER_TRIO: [&str; 3] = ["builder", "layer", "service"];

// ---------------------------------------------------------------------------
// Tokenizer: just enough of Rust's lexer to tell code from comments and
// literals. Everything the checker does not need to tell apart is `Other`.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword; raw identifiers keep their `r#`, so `r#use`
    /// is never mistaken for the keyword.
    Ident(String),
    /// `::`
    PathSep,
    /// `{`
    Open,
    /// `}`
    Close,
    Comma,
    Semi,
    Star,
    /// The `$` of `$crate` in macro bodies.
    Dollar,
    /// Any other punctuation, a number, a lifetime or a literal. Literals are
    /// kept as a token (not dropped) so that no path is glued across one.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Moves one character on, counting lines: comments and literals span
    /// lines, and the report must point at the right one.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn push(&mut self, tok: Tok, line: usize) {
        self.tokens.push(Token { tok, line });
    }

    fn run(mut self) -> Vec<Token> {
        while let Some(c) = self.peek(0) {
            let line = self.line;
            match c {
                _ if c.is_whitespace() => {
                    self.bump();
                }
                // `//`, `///` and `//!` alike: doc links are not imports.
                '/' if self.peek(1) == Some('/') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '/' if self.peek(1) == Some('*') => self.block_comment(),
                '"' => self.quoted(line),
                '\'' => self.char_or_lifetime(line),
                ':' if self.peek(1) == Some(':') => {
                    self.pos += 2;
                    self.push(Tok::PathSep, line);
                }
                '{' | '}' | ',' | ';' | '*' | '$' => {
                    self.pos += 1;
                    let tok = match c {
                        '{' => Tok::Open,
                        '}' => Tok::Close,
                        ',' => Tok::Comma,
                        ';' => Tok::Semi,
                        '*' => Tok::Star,
                        _ => Tok::Dollar,
                    };
                    self.push(tok, line);
                }
                _ if is_ident_start(c) => self.word(line),
                // Digits, suffixes and hex letters alike (`0x1F`, `10u8`): a
                // number must not leave an identifier behind.
                _ if c.is_ascii_digit() => {
                    while self.peek(0).is_some_and(is_ident_continue) {
                        self.pos += 1;
                    }
                    self.push(Tok::Other, line);
                }
                _ => {
                    self.pos += 1;
                    self.push(Tok::Other, line);
                }
            }
        }
        self.tokens
    }

    /// `/* … */`, which nest in Rust.
    fn block_comment(&mut self) {
        self.pos += 2;
        let mut depth = 1;
        while depth > 0 {
            match (self.bump(), self.peek(0)) {
                (None, _) => break,
                (Some('/'), Some('*')) => {
                    self.pos += 1;
                    depth += 1;
                }
                (Some('*'), Some('/')) => {
                    self.pos += 1;
                    depth -= 1;
                }
                _ => {}
            }
        }
    }

    /// A `"…"` string (also the body of `b"…"` and `c"…"`), escapes included.
    fn quoted(&mut self, line: usize) {
        self.bump();
        while let Some(c) = self.bump() {
            match c {
                '\\' => {
                    self.bump();
                }
                '"' => break,
                _ => {}
            }
        }
        self.push(Tok::Other, line);
    }

    /// `'x'`, `'\n'`, `'\''` and `'"'` are characters; `'a` and `'static` are
    /// lifetimes (or labels). Telling them apart matters: a `'"'` taken for a
    /// lifetime would open a string and swallow the code after it.
    fn char_or_lifetime(&mut self, line: usize) {
        match (self.peek(1), self.peek(2)) {
            (Some('\\'), _) => {
                // Quote, backslash and the escaped character (which may be a
                // quote), then up to the closing quote (`'\u{1F600}'`).
                self.pos += 3;
                while let Some(c) = self.bump() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            (Some(_), Some('\'')) => self.pos += 3,
            // A lifetime: its name lexes as an identifier next, harmlessly.
            _ => self.pos += 1,
        }
        self.push(Tok::Other, line);
    }

    /// An identifier, unless it is the prefix of a literal (`b"…"`, `br#"…"#`,
    /// `b'x'`) or of a raw identifier (`r#type`).
    fn word(&mut self, line: usize) {
        let start = self.pos;
        while self.peek(0).is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        let next = self.peek(0);
        if matches!(word.as_str(), "b" | "c") && next == Some('"') {
            self.quoted(line);
        } else if word == "b" && next == Some('\'') {
            self.char_or_lifetime(line);
        } else if matches!(word.as_str(), "r" | "br" | "cr") && self.at_raw_string() {
            self.raw_string(line);
        } else if word == "r" && next == Some('#') && self.peek(1).is_some_and(is_ident_start) {
            self.pos += 1;
            let start = self.pos;
            while self.peek(0).is_some_and(is_ident_continue) {
                self.pos += 1;
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.push(Tok::Ident(format!("r#{name}")), line);
        } else {
            self.push(Tok::Ident(word), line);
        }
    }

    /// Whether the `r` just read opens a raw string: `#`s, then a quote.
    fn at_raw_string(&self) -> bool {
        let hashes = self.chars[self.pos..]
            .iter()
            .take_while(|&&c| c == '#')
            .count();
        self.peek(hashes) == Some('"')
    }

    /// `r#"…"#`: no escapes; it ends at a quote followed by as many `#`s as
    /// it opened with, so it may hold quotes (and `crate::` paths) freely.
    fn raw_string(&mut self, line: usize) {
        let mut hashes = 0;
        while self.peek(0) == Some('#') {
            hashes += 1;
            self.pos += 1;
        }
        self.bump(); // the opening quote
        while let Some(c) = self.bump() {
            if c == '"' && (0..hashes).all(|i| self.peek(i) == Some('#')) {
                self.pos += hashes;
                break;
            }
        }
        self.push(Tok::Other, line);
    }
}

fn tokenize(source: &str) -> Vec<Token> {
    Lexer {
        chars: source.chars().collect(),
        pos: 0,
        line: 1,
        tokens: Vec::new(),
    }
    .run()
}

// ---------------------------------------------------------------------------
// Paths: the leaves of `use` trees, and bare `crate::…` paths in code.
// ---------------------------------------------------------------------------

/// A path named in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedPath {
    /// As written, from the first segment (`crate`, `self`, …). A `self`
    /// leaf adds nothing: `a::{self}` names `a`. A glob ends in `*`.
    segments: Vec<String>,
    /// The name a `use … as name` leaf binds.
    alias: Option<String>,
    /// The line of the leaf: in a group spread over many lines, the line of
    /// the name itself is the one to edit.
    line: usize,
}

impl NamedPath {
    fn text(&self) -> String {
        self.segments.join("::")
    }
}

fn tok_at(tokens: &[Token], pos: usize) -> Option<&Tok> {
    tokens.get(pos).map(|t| &t.tok)
}

fn is_word(tokens: &[Token], pos: usize, word: &str) -> bool {
    matches!(tok_at(tokens, pos), Some(Tok::Ident(w)) if w == word)
}

/// Parses the use tree starting at `pos` under `prefix`, pushing one path per
/// leaf onto `out`. Returns the position after the tree, or `None` when the
/// tokens are not a use tree (a macro fragment, say): the caller then falls
/// back to scanning them as bare paths, so nothing is lost.
fn parse_use_tree(
    tokens: &[Token],
    mut pos: usize,
    prefix: &[String],
    out: &mut Vec<NamedPath>,
) -> Option<usize> {
    let mut path = prefix.to_vec();
    // `use ::std::…`: a leading `::` names an external crate; keep going so
    // that the tree is consumed as a whole.
    if path.is_empty() && tok_at(tokens, pos) == Some(&Tok::PathSep) {
        pos += 1;
    }
    loop {
        let token = tokens.get(pos)?;
        match &token.tok {
            Tok::Open => {
                pos += 1;
                loop {
                    if tok_at(tokens, pos) == Some(&Tok::Close) {
                        return Some(pos + 1);
                    }
                    pos = parse_use_tree(tokens, pos, &path, out)?;
                    match tok_at(tokens, pos)? {
                        Tok::Comma => pos += 1,
                        Tok::Close => return Some(pos + 1),
                        _ => return None,
                    }
                }
            }
            Tok::Star => {
                path.push("*".to_owned());
                out.push(NamedPath {
                    segments: path,
                    alias: None,
                    line: token.line,
                });
                return Some(pos + 1);
            }
            // `$crate` in a macro body is `crate`.
            Tok::Dollar => pos += 1,
            Tok::Ident(name) => {
                pos += 1;
                // A leading `self` (`use self::x`) is a segment; a `self`
                // leaf inside braces stands for the prefix itself.
                if name != "self" || path.is_empty() {
                    path.push(name.clone());
                }
                if tok_at(tokens, pos) == Some(&Tok::PathSep) {
                    pos += 1;
                    continue;
                }
                let mut alias = None;
                if is_word(tokens, pos, "as") {
                    if let Some(Tok::Ident(new_name)) = tok_at(tokens, pos + 1) {
                        alias = Some(new_name.clone());
                    }
                    pos += 2;
                }
                out.push(NamedPath {
                    segments: path,
                    alias,
                    line: token.line,
                });
                return Some(pos);
            }
            _ => return None,
        }
    }
}

/// Every path in `source` that starts at a root: all `use` leaves (whatever
/// their first segment), and bare `crate::a::…` paths in code.
fn named_paths(source: &str) -> Vec<NamedPath> {
    let tokens = tokenize(source);
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < tokens.len() {
        if is_word(&tokens, pos, "use") {
            let mut leaves = Vec::new();
            if let Some(end) = parse_use_tree(&tokens, pos + 1, &[], &mut leaves) {
                found.append(&mut leaves);
                pos = end;
                continue;
            }
        }
        // `crate::a::b` in an expression, a type, a bound or a macro call
        // (`$crate::a` too: the `$` is a token of its own). `pub(crate)` is
        // not a path: no `::` follows.
        if is_word(&tokens, pos, "crate")
            && tok_at(&tokens, pos + 1) == Some(&Tok::PathSep)
            && matches!(tok_at(&tokens, pos + 2), Some(Tok::Ident(_)))
        {
            let mut segments = vec!["crate".to_owned()];
            let mut end = pos + 1;
            while tok_at(&tokens, end) == Some(&Tok::PathSep) {
                let Some(Tok::Ident(segment)) = tok_at(&tokens, end + 1) else {
                    break;
                };
                segments.push(segment.clone());
                end += 2;
            }
            found.push(NamedPath {
                segments,
                alias: None,
                line: tokens[pos].line,
            });
            pos = end;
            continue;
        }
        pos += 1;
    }
    found
}

/// The paths of `source` that start at `crate`: the only way a module of
/// this crate reaches another top-level module (the crate writes `super::`
/// only within a module).
fn crate_paths(source: &str) -> Vec<NamedPath> {
    named_paths(source)
        .into_iter()
        .filter(|p| p.segments[0] == "crate")
        .collect()
}

/// The module a segment names, ignoring a raw identifier's `r#`.
fn unraw(segment: &str) -> &str {
    segment.strip_prefix("r#").unwrap_or(segment)
}

/// The names `lib.rs` brings into the crate root with `use`, each with the
/// top-level module it comes from: `pub use self::client::Client` makes
/// `crate::Client` a path into `client`. Globs are skipped (their names are
/// only known by reading the module, and this crate re-exports by name).
fn root_imports(lib_rs: &str, nodes: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut imports = BTreeMap::new();
    for path in named_paths(lib_rs) {
        let segments: Vec<&str> = path.segments.iter().map(|s| unraw(s)).collect();
        // At the root, `self::a`, `crate::a` and plain `a` all name module `a`.
        let rest = match segments.first() {
            Some(&("self" | "crate")) => &segments[1..],
            _ => &segments[..],
        };
        let (Some(module), Some(last)) = (rest.first(), rest.last()) else {
            continue;
        };
        if !nodes.contains(*module) || *last == "*" {
            continue;
        }
        let name = path.alias.as_deref().map_or(*last, unraw);
        imports.insert(name.to_owned(), (*module).to_owned());
    }
    imports
}

/// The `mod a;` items of `lib.rs`, to check that every declared module was
/// found on disk (a `#[path]` or an unusual layout would otherwise go
/// unchecked without a word).
fn declared_modules(lib_rs: &str) -> BTreeSet<String> {
    let tokens = tokenize(lib_rs);
    (0..tokens.len())
        .filter(|&i| is_word(&tokens, i, "mod") && tok_at(&tokens, i + 2) == Some(&Tok::Semi))
        .filter_map(|i| match tok_at(&tokens, i + 1) {
            Some(Tok::Ident(name)) => Some(unraw(name).to_owned()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The module graph.
// ---------------------------------------------------------------------------

/// A top-level module and the text of each of its files.
struct Module {
    name: String,
    /// (path shown in reports, source)
    files: Vec<(String, String)>,
}

/// Where an edge comes from: the developer's to-do list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
    /// The path as written, e.g. `crate::grant::ValidatedGrant`.
    path: String,
}

#[derive(Default)]
struct Graph {
    nodes: BTreeSet<String>,
    /// from -> to -> the places that make the edge
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<Site>>>,
}

impl Graph {
    fn successors<'g>(&'g self, node: &str) -> impl Iterator<Item = &'g String> + 'g {
        self.edges.get(node).into_iter().flat_map(BTreeMap::keys)
    }

    fn sites(&self, from: &str, to: &str) -> &BTreeSet<Site> {
        &self.edges[from][to]
    }
}

fn build_graph(lib_rs: &str, modules: &[Module]) -> Graph {
    let nodes: BTreeSet<String> = modules.iter().map(|m| m.name.clone()).collect();
    let root_imports = root_imports(lib_rs, &nodes);
    let mut graph = Graph {
        nodes,
        ..Graph::default()
    };
    for module in modules {
        for (file, source) in &module.files {
            for path in crate_paths(source) {
                let Some(first) = path.segments.get(1).map(|s| unraw(s)) else {
                    continue;
                };
                let (target, shown) = if graph.nodes.contains(first) {
                    (first, path.text())
                } else if let Some(module) = root_imports.get(first) {
                    (
                        module.as_str(),
                        format!("{} (re-exported from {module})", path.text()),
                    )
                } else {
                    // An item of lib.rs itself (or `crate::*`): the root,
                    // which is not a node.
                    continue;
                };
                if target == module.name {
                    continue;
                }
                graph
                    .edges
                    .entry(module.name.clone())
                    .or_default()
                    .entry(target.to_owned())
                    .or_default()
                    .insert(Site {
                        file: file.clone(),
                        line: path.line,
                        path: shown,
                    });
            }
        }
    }
    graph
}

/// Tarjan's algorithm: the strongly connected components, each sorted, in
/// reverse topological order (a component comes after every component it
/// imports from), which is the order the layering needs.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan {
        successors: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        components: Vec<Vec<usize>>,
    }

    impl Tarjan {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for i in 0..self.successors[v].len() {
                let w = self.successors[v][i];
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }

    let names: Vec<&String> = graph.nodes.iter().collect();
    let position = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .expect("edges join nodes")
    };
    let count = names.len();
    let mut tarjan = Tarjan {
        successors: names
            .iter()
            .map(|n| graph.successors(n).map(|s| position(s)).collect())
            .collect(),
        index: vec![None; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..count {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    tarjan
        .components
        .into_iter()
        .map(|c| {
            let mut members: Vec<String> = c.into_iter().map(|i| names[i].clone()).collect();
            members.sort();
            members
        })
        .collect()
}

fn in_trio(module: &str) -> bool {
    TOWER_TRIO.contains(&module)
}

/// A component that is a cycle, and not one the trio may keep.
fn is_forbidden(component: &[String]) -> bool {
    component.len() > 1 && !component.iter().all(|m| in_trio(m))
}

/// The shortest path `from` ..= `to` staying inside `within` (breadth
/// first, successors in name order, so the report is stable).
fn shortest_path(
    graph: &Graph,
    from: &str,
    to: &str,
    within: &BTreeSet<&str>,
) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_owned()];
            let mut at = to;
            while let Some(&previous) = parent.get(at) {
                path.push(previous.to_owned());
                at = previous;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.successors(node) {
            if within.contains(next.as_str()) && seen.insert(next.as_str()) {
                parent.insert(next.as_str(), node);
                queue.push_back(next.as_str());
            }
        }
    }
    None
}

/// The cycles to show for a component: for each of its edges, the shortest
/// cycle through it. Together they show every edge that holds the component
/// together, each once or more, without listing the (exponentially many)
/// elementary cycles. Cycles wholly inside the trio are allowed, so left
/// out. Each starts at its smallest name; shortest first.
fn cycles_in(graph: &Graph, component: &[String]) -> Vec<Vec<String>> {
    let within: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut cycles = BTreeSet::new();
    for from in component {
        for to in graph
            .successors(from)
            .filter(|to| within.contains(to.as_str()))
        {
            let Some(back) = shortest_path(graph, to, from, &within) else {
                continue;
            };
            // from -> to -> … -> from, without repeating `from` at the end.
            let mut cycle = vec![from.clone()];
            cycle.extend(back[..back.len() - 1].iter().cloned());
            if cycle.iter().all(|m| in_trio(m)) {
                continue;
            }
            let smallest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
            cycle.rotate_left(smallest);
            cycles.insert((cycle.len(), cycle));
        }
    }
    cycles.into_iter().map(|(_, cycle)| cycle).collect()
}

/// The paths of one line, merged on their common prefix as a `use` group
/// would be (`crate::device::{DeviceRecord, PollOutcome}`), so that a long
/// import reads as one line of the report.
fn merge_paths(paths: &[&str]) -> String {
    let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split("::").collect()).collect();
    let shortest = split.iter().map(Vec::len).min().unwrap_or(0);
    let common = (0..shortest)
        .take_while(|&i| split.iter().all(|s| s[i] == split[0][i]))
        .count();
    if paths.len() < 2 || common == 0 {
        return paths.join(", ");
    }
    // A path that is the prefix itself was a `self` leaf.
    let tails: Vec<String> = split
        .iter()
        .map(|s| {
            if s.len() == common {
                "self".to_owned()
            } else {
                s[common..].join("::")
            }
        })
        .collect();
    format!(
        "{}::{{{}}}",
        split[0][..common].join("::"),
        tails.join(", ")
    )
}

/// `None` when the graph is acyclic but for the trio; otherwise what to fix.
fn cycle_report(graph: &Graph) -> Option<String> {
    let forbidden: Vec<Vec<String>> = strongly_connected(graph)
        .into_iter()
        .filter(|c| is_forbidden(c))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    let mut report = format!(
        "{} set(s) of modules import each other in a cycle; only {} may. \
         Break each cycle below by moving what one side imports. Edges read \
         `importer -> imported`, then the file, line and path that make them:\n",
        forbidden.len(),
        TOWER_TRIO.join(", "),
    );
    for component in &forbidden {
        let _ = writeln!(report, "\nstrongly connected: {}", component.join(", "));
        // An edge is in many cycles; its evidence is listed the first time.
        let cycles = cycles_in(graph, component);
        let mut listed = BTreeSet::new();
        for cycle in &cycles {
            let _ = writeln!(report, "  cycle: {} -> {}", cycle.join(" -> "), cycle[0]);
            for (i, from) in cycle.iter().enumerate() {
                let to = &cycle[(i + 1) % cycle.len()];
                if !listed.insert((from, to)) {
                    let _ = writeln!(report, "    {from} -> {to}: as above");
                    continue;
                }
                let _ = writeln!(report, "    {from} -> {to}:");
                let mut by_line: BTreeMap<(&str, usize), Vec<&str>> = BTreeMap::new();
                for site in graph.sites(from, to) {
                    by_line
                        .entry((&site.file, site.line))
                        .or_default()
                        .push(&site.path);
                }
                for ((file, line), paths) in by_line {
                    let _ = writeln!(report, "      {file}:{line}  {}", merge_paths(&paths));
                }
            }
        }
    }
    Some(report)
}

/// The modules in layers, top first: each line imports only from lines
/// below it. A layer's number is the length of the longest import chain
/// beneath it. Components (the trio, or a cycle) are shown as one line.
fn layering(graph: &Graph) -> String {
    // Tarjan's order puts a component after everything it imports, so its
    // height can be computed in one pass.
    let components = strongly_connected(graph);
    let component_of: BTreeMap<&str, usize> = components
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut heights = vec![0; components.len()];
    let mut imports: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); components.len()];
    for (i, component) in components.iter().enumerate() {
        for member in component {
            for to in graph.successors(member) {
                let j = component_of[to.as_str()];
                if j != i {
                    heights[i] = heights[i].max(heights[j] + 1);
                    imports[i].insert(to);
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..components.len()).collect();
    order.sort_by(|&a, &b| {
        heights[b]
            .cmp(&heights[a])
            .then_with(|| components[a].cmp(&components[b]))
    });
    let mut text =
        String::from("Top-level modules, top first (each imports only from lines below it):\n");
    for i in order {
        let component = &components[i];
        let note = match component.len() {
            1 => "",
            _ if is_forbidden(component) => "  [FORBIDDEN CYCLE]",
            _ => "  [allowed Tower trio cycle]",
        };
        let imports: Vec<&str> = imports[i].iter().copied().collect();
        let _ = writeln!(
            text,
            "{:>3}  {}{note}\n       -> {}",
            heights[i],
            component.join(" + "),
            if imports.is_empty() {
                "(nothing in the crate)".to_owned()
            } else {
                imports.join(", ")
            },
        );
    }
    text
}

// ---------------------------------------------------------------------------
// Reading the crate.
// ---------------------------------------------------------------------------

fn rust_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files_under(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The crate's graph, read from `src/` next to this test's manifest.
fn crate_graph() -> Graph {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = manifest.join("src");
    let mut files_of: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if path.is_dir() {
            // `src/bin/` holds other crates, not modules of this one.
            if name != "bin" {
                // `src/a/mod.rs` and `src/a.rs` + `src/a/…` alike: one node.
                rust_files_under(&path, files_of.entry(name).or_default());
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") && name != "lib" && name != "main"
        {
            files_of.entry(name).or_default().push(path);
        }
    }
    let read = |path: &Path| {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let modules: Vec<Module> = files_of
        .into_iter()
        // A directory without Rust files (one being emptied, say) is no module.
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(name, paths)| Module {
            name,
            files: paths
                .iter()
                .map(|p| {
                    (
                        p.strip_prefix(manifest).unwrap_or(p).display().to_string(),
                        read(p),
                    )
                })
                .collect(),
        })
        .collect();
    let lib_rs = read(&src.join("lib.rs"));
    let graph = build_graph(&lib_rs, &modules);
    let missing: Vec<String> = declared_modules(&lib_rs)
        .difference(&graph.nodes)
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs declares modules this test did not find as src/<name>.rs or src/<name>/: {missing:?}",
    );
    graph
}

// ---------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------

#[test]
fn modules_do_not_import_each_other_in_a_cycle() {
    if let Some(report) = cycle_report(&crate_graph()) {
        panic!("{report}");
    }
}

/// Documentation as much as a check: run with `--nocapture` to see the
/// layers.
#[test]
fn the_graph_points_down() {
    let graph = crate_graph();
    println!("{}", layering(&graph));
    assert!(
        cycle_report(&graph).is_none(),
        "the modules have no top-down order yet: `modules_do_not_import_each_other_in_a_cycle` lists the cycles",
    );
}

// ---------------------------------------------------------------------------
// The checker itself: each of these would pass vacuously if the parser saw
// nothing, so each also asserts what must be found.
// ---------------------------------------------------------------------------

mod checker {
    use super::*;

    fn paths(source: &str) -> Vec<String> {
        crate_paths(source).iter().map(NamedPath::text).collect()
    }

    fn module(name: &str, source: &str) -> Module {
        Module {
            name: name.to_owned(),
            files: vec![(format!("src/{name}.rs"), source.to_owned())],
        }
    }

    #[test]
    fn nested_use_groups_name_every_leaf() {
        let source = "use crate::{\n    a::{self, X},\n    b::{c::{D, E as F}, *},\n    g as h,\n};\nuse std::fmt;\n";
        let found = crate_paths(source);
        let texts: Vec<String> = found.iter().map(NamedPath::text).collect();
        assert_eq!(
            texts,
            [
                "crate::a",
                "crate::a::X",
                "crate::b::c::D",
                "crate::b::c::E",
                "crate::b::*",
                "crate::g"
            ]
        );
        // The line of the leaf, and the `as` names.
        assert_eq!(found[2].line, 3);
        assert_eq!(found[3].alias.as_deref(), Some("F"));
        assert_eq!(found[5].alias.as_deref(), Some("h"));
    }

    #[test]
    fn comments_and_doc_links_do_not_count() {
        let source = "//! See [`X`](crate::bar::X).\n\
                      /// Built by [`Y`](crate::baz::Y).\n\
                      // crate::qux::Z\n\
                      /* crate::a /* nested crate::b */ crate::c */\n\
                      /** crate::d::E */\n\
                      fn f() { crate::real::call() }\n";
        // Only the call survives, on the line it is on.
        assert_eq!(paths(source), ["crate::real::call"]);
        assert_eq!(crate_paths(source)[0].line, 6);
    }

    #[test]
    fn literals_do_not_count() {
        let source = r##"
            let a = "crate::x::A";
            let b = r#"crate::y "quoted" "#;
            let c = b"crate::z";
            let d = "escaped \" crate::w::D";
            let quote = '"';
            let e = '\'';
            fn f<'a>(s: &'a str) -> &'static str { "crate::v" }
            #[doc = "crate::u"]
            type T = crate::real::Thing;
        "##;
        // A `'"'` or `'\''` read wrongly would swallow the type alias below.
        assert_eq!(paths(source), ["crate::real::Thing"]);
    }

    #[test]
    fn paths_in_code_count_and_visibility_does_not() {
        let source = "pub(crate) fn f() -> u8 {\n\
                      let x = crate::a::b();\n\
                      if crate::c::D == 1 {}\n\
                      $crate::m::mac!();\n\
                      0 }\n\
                      fn g<S: crate::s::Store>() {}\n";
        assert_eq!(
            paths(source),
            [
                "crate::a::b",
                "crate::c::D",
                "crate::m::mac",
                "crate::s::Store"
            ]
        );
    }

    #[test]
    fn super_and_self_paths_stay_inside() {
        assert!(
            paths(
                "use super::x; use self::y; mod t { use super::super::z; fn f() { self::y(); } }"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_cycle_outside_the_trio_fails_with_its_evidence() {
        let modules = [
            module("a", "use crate::{\n    b::B,\n    c,\n};"),
            module("b", "fn f() { crate::a::g() }"),
            // A doc link back to `a` must not close a cycle.
            module("c", "/// [`A`](crate::a::A)\nfn h() {}"),
        ];
        let graph = build_graph("", &modules);
        let report = cycle_report(&graph).expect("a <-> b is a cycle");
        assert!(report.contains("strongly connected: a, b\n"), "{report}");
        assert!(report.contains("cycle: a -> b -> a"), "{report}");
        assert!(report.contains("src/a.rs:2  crate::b::B"), "{report}");
        assert!(report.contains("src/b.rs:1  crate::a::g"), "{report}");
        assert!(!report.contains("c ->"), "{report}");
    }

    #[test]
    fn the_trio_may_cycle_but_not_through_anything_else() {
        let mut modules = vec![
            module("layer", "use crate::builder::Builder;"),
            module("builder", "use crate::service::TokenGate;"),
            module(
                "service",
                "use crate::{layer::TokenGateLayer, check::Checks};",
            ),
            module("check", "use crate::error::Failure;"),
            module("error", ""),
        ];
        let graph = build_graph("", &modules);
        assert!(cycle_report(&graph).is_none(), "{:?}", cycle_report(&graph));
        assert!(layering(&graph).contains("builder + layer + service  [allowed Tower trio cycle]"));

        // check -> layer closes layer -> builder -> service -> check.
        modules[3] = module(
            "check",
            "use crate::error::Failure;\nfn f() { crate::layer::x(); }",
        );
        let report = cycle_report(&build_graph("", &modules)).expect("a cycle through check");
        assert!(
            report.contains("strongly connected: builder, check, layer, service\n"),
            "{report}"
        );
        assert!(
            report.contains("cycle: builder -> service -> check -> layer -> builder"),
            "{report}"
        );
        // The trio's own loop is not listed as something to fix.
        assert!(
            !report.contains("cycle: builder -> service -> layer -> builder"),
            "{report}"
        );
    }

    #[test]
    fn names_re_exported_at_the_root_lead_to_their_module() {
        let lib_rs =
            "mod client;\nmod refresh;\npub use self::{client::{GrantType as Kind}, refresh::*};\n";
        let modules = [
            module("client", "use crate::refresh::R;"),
            module("refresh", "fn f() { let _ = crate::Kind::Refresh; }"),
        ];
        assert_eq!(
            declared_modules(lib_rs),
            BTreeSet::from(["client".to_owned(), "refresh".to_owned()])
        );
        let report = cycle_report(&build_graph(lib_rs, &modules)).expect("client <-> refresh");
        assert!(
            report.contains("src/refresh.rs:1  crate::Kind::Refresh (re-exported from client)"),
            "{report}"
        );
    }

    #[test]
    fn one_line_of_evidence_per_line_of_source() {
        assert_eq!(
            merge_paths(&["crate::d::A", "crate::d::B", "crate::d::e::C"]),
            "crate::d::{A, B, e::C}"
        );
        assert_eq!(
            merge_paths(&["crate::d", "crate::d::A"]),
            "crate::d::{self, A}"
        );
        assert_eq!(
            merge_paths(&["crate::d::A", "crate::e::B"]),
            "crate::{d::A, e::B}"
        );
        assert_eq!(merge_paths(&["crate::d::A"]), "crate::d::A");
        let modules = [
            module("a", "use crate::b::{X,\n Y, Z};\nfn f() { crate::b::W(); }"),
            module("b", "use crate::a::A;"),
        ];
        let report = cycle_report(&build_graph("", &modules)).expect("a <-> b");
        assert!(report.contains("src/a.rs:1  crate::b::X\n"), "{report}");
        assert!(
            report.contains("src/a.rs:2  crate::b::{Y, Z}\n"),
            "{report}"
        );
        assert!(report.contains("src/a.rs:3  crate::b::W\n"), "{report}");
    }
}
