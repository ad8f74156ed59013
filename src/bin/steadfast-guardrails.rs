//! Writes the Prometheus rules and the Grafana dashboard for a policy file, and renders a saved
//! reality map.
//!
//! ```sh
//! steadfast-guardrails <policies.toml> <output directory>
//! steadfast-guardrails map <map.json> [--format mermaid|dot|json] [--check]
//! ```
//!
//! `map` reads a map saved from `steadfast::map::MapSnapshot::to_json` (or from the map
//! handler) and prints it; `--check` fails (exit 1) when it lists dependencies called without a
//! declared policy, for CI.

use std::path::PathBuf;
use std::process::ExitCode;

use steadfast::map::MapSnapshot;
use steadfast::policy::PolicyFile;

const USAGE: &str = "usage: steadfast-guardrails <policies.toml> <output directory>\n       \
                     steadfast-guardrails map <map.json> [--format mermaid|dot|json] [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("map") {
        return map(&args[1..]);
    }
    let [policies, out] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let file = match PolicyFile::load(policies) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("{policies}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let out = PathBuf::from(out);
    if let Err(error) = steadfast::guardrails::write_file(&file, &out) {
        eprintln!("cannot write to {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {0}/rules.yml and {0}/dashboard.json", out.display());
    ExitCode::SUCCESS
}

fn map(args: &[String]) -> ExitCode {
    let mut path = None;
    let mut format = "mermaid";
    let mut check = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--format" => match args.next().map(String::as_str) {
                Some(value @ ("mermaid" | "dot" | "json")) => format = value,
                _ => {
                    eprintln!("--format is mermaid, dot or json\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            other if path.is_none() && !other.starts_with("--") => path = Some(other),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let map = match MapSnapshot::from_json(&text) {
        Ok(map) => map,
        Err(error) => {
            eprintln!("{path}: not a steadfast map: {error}");
            return ExitCode::FAILURE;
        }
    };
    match format {
        "dot" => print!("{}", map.to_dot()),
        "json" => println!("{}", map.to_json()),
        _ => print!("{}", map.to_mermaid()),
    }
    let undeclared = map.undeclared();
    if check && !undeclared.is_empty() {
        eprintln!(
            "dependencies called without a declared policy: {}",
            undeclared.join(", ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
