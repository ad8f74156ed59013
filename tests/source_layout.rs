//! The source stays readable: a file in `src/` longer than about 500 lines says at its top why
//! it is long ("Long on purpose: ..." or "Long because ...").

use std::path::Path;

const LIMIT: usize = 520;

fn visit(dir: &Path, long: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, long);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if text.lines().count() <= LIMIT {
                continue;
            }
            let header: String = text
                .lines()
                .take_while(|line| line.starts_with("//!"))
                .collect::<Vec<_>>()
                .join(" ");
            if !(header.contains("Long on purpose") || header.contains("Long because")) {
                long.push(format!(
                    "{} ({} lines)",
                    path.display(),
                    text.lines().count()
                ));
            }
        }
    }
}

#[test]
fn every_long_source_file_says_why() {
    let mut long = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut long,
    );
    assert!(
        long.is_empty(),
        "long files without a reason at their top: {long:?}"
    );
}
