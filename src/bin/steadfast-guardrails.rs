//! Writes the Prometheus rules and the Grafana dashboard for a policy file.
//!
//! ```sh
//! steadfast-guardrails <policies.toml> <output directory>
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use steadfast::policy::PolicyFile;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policies, out] = args.as_slice() else {
        eprintln!("usage: steadfast-guardrails <policies.toml> <output directory>");
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
    if let Err(error) = steadfast::guardrails::write(file.policies(), file.alerts(), &out) {
        eprintln!("cannot write to {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {0}/rules.yml and {0}/dashboard.json", out.display());
    ExitCode::SUCCESS
}
