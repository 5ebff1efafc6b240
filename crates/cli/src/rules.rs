//! `microfunnel rules check FILE`: validates a rule file (TOML, or JSON when
//! the name ends in `.json`) and prints every problem as `FILE:LINE: field: rule`.

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
    },
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    match args.command {
        Command::Check { file } => match parse(&file)? {
            Ok(rules) => {
                crate::emit(&format!(
                    "{}: ok (version {}, {} actions, tiers {})",
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

/// Loads a rule file for other commands; a bad file is an error listing its problems.
pub fn load(path: &Path) -> Result<Rules, String> {
    parse(path)?.map_err(|e| format!("invalid rule file\n{}", describe(path, &e)))
}
