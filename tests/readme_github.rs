//! The README's "Testing your GitHub login without GitHub" runs as written:
//! each `sh` block of that section starts with `# demo: FLAGS`; the demo
//! binary starts with those flags, `DEMO` names its address, and the block
//! runs with `bash -e` in a scratch directory. A block whose last command
//! fails (every block ends with its own check) fails the test.

mod common;

use std::process::Command;

use common::demo::start;

const SECTION: &str = "## Testing your GitHub login without GitHub";

/// The section's `sh` blocks: (the demo's flags, the script).
fn blocks() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme.find(SECTION).expect("the section is in the README");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let script: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let flags = script
            .first()
            .and_then(|first| first.strip_prefix("# demo:"))
            .unwrap_or_else(|| panic!("a block without its `# demo:` line: {script:?}"));
        blocks.push((
            flags.split_whitespace().map(str::to_owned).collect(),
            script.join("\n"),
        ));
    }
    blocks
}

#[test]
fn every_command_of_the_github_testing_page_runs() {
    let blocks = blocks();
    assert!(blocks.len() >= 5, "the page's blocks: {}", blocks.len());
    for (n, (flags, script)) in blocks.iter().enumerate() {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let demo = start(&flags);
        let dir = std::env::temp_dir().join(format!("tokengate-readme-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let output = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", script])
            .env("DEMO", format!("http://{}", demo.addr))
            .current_dir(&dir)
            .output()
            .expect("bash");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            output.status.success(),
            "block {n} (demo {flags:?}) failed: {}\n{script}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
