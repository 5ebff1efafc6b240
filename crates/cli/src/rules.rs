//! `microfunnel rules check FILE [--conversions FILE.json]`: validates a rule
//! file (TOML, or JSON when the name ends in `.json`) and prints every problem
//! as `FILE:LINE: field: rule`; with the site's conversion definitions, also
//! checks them and that each stage they name is one of the rules' stages.

use microfunnel_core::conversion::Definitions;
use microfunnel_core::scoring::{RuleFileError, Rules};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Validate a rule file and print its errors (exit status 1 if any).
    Check {
        /// The rule file (TOML; JSON if it ends in .json).
        file: PathBuf,
        /// The site's conversion definitions (a JSON list, as in the site's
        /// `conversions`), checked against the rules' stages.
        #[arg(long)]
        conversions: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    match args.command {
        Command::Check { file, conversions } => match parse(&file)? {
            Ok(rules) => {
                if let Some(path) = &conversions
                    && let Err(e) = load_conversions(path)
                        .and_then(|d| d.stages(&rules).map(|_| ()).map_err(|e| format!("{}: {e}", path.display())))
                {
                    crate::emit(&e)?;
                    return Ok(ExitCode::FAILURE);
                }
                let stages: Vec<&str> = rules.stages().iter().map(|s| s.id()).collect();
                let stages = if stages.is_empty() { "none".to_owned() } else { stages.join(" → ") };
                crate::emit(&format!(
                    "{}: ok (version {}, {} actions, tiers {}, stages {stages})",
                    file.display(),
                    rules.version(),
                    rules.action_ids().count(),
                    rules.tier_ids().collect::<Vec<_>>().join(", ")
                ))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                crate::emit(&describe(&file, &e))?;
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

/// Reads and parses a rule file; the outer error is the I/O failure.
fn parse(path: &Path) -> Result<Result<Rules, RuleFileError>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let json = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("json"));
    Ok(if json { Rules::from_json(&text) } else { Rules::from_toml(&text) })
}

/// One `FILE:LINE: field: rule` line per problem.
fn describe(path: &Path, e: &RuleFileError) -> String {
    e.errors
        .iter()
        .map(|err| {
            let at = match err.line {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            };
            if err.field.is_empty() {
                format!("{at}: {}", err.rule)
            } else {
                format!("{at}: {}: {}", err.field, err.rule)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a JSON list of conversion definitions; an error names the file and
/// the field (`conversions[1].stage`).
pub fn load_conversions(path: &Path) -> Result<Definitions, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    Definitions::from_json(&value).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads a rule file for other commands; a bad file is an error listing its problems.
pub fn load(path: &Path) -> Result<Rules, String> {
    parse(path)?.map_err(|e| format!("invalid rule file\n{}", describe(path, &e)))
}
