//! `microfunnel rules check FILE [--conversions FILE.json]`: validates a rule
//! file (TOML, or JSON when the name ends in `.json`) and prints every problem
//! as `FILE:LINE: field: rule` (the path as given; `(document)` for the field
//! of a syntax error); with the site's conversion definitions, also checks
//! them and that each stage they name is one of the rules' stages, in the
//! same form.

use crate::located::{self, JsonLines};
use microfunnel_core::ValidationError;
use microfunnel_core::conversion::Definitions;
use microfunnel_core::scoring::{ConversionStages, RuleFileError, Rules};
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
                    && let Err(e) = load_conversions(path).and_then(|c| c.stages(&rules).map(|_| ()))
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
            Err(problems) => {
                crate::emit(&problems)?;
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

/// Reads and parses a rule file; the outer error is the I/O failure, the
/// inner one the file's problems ([`describe`]).
fn parse(path: &Path) -> Result<Result<Rules, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let json = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("json"));
    let parsed = if json { Rules::from_json(&text) } else { Rules::from_toml(&text) };
    Ok(parsed.map_err(|e| describe(path, &text, json, &e)))
}

/// One `FILE:LINE: field: rule` line per problem, in file order. The core
/// gives TOML lines; a JSON file's are found here from the field path. A
/// problem with no line of its own is at the top of the file (a top-level
/// key that is missing), one with no field is about the document.
fn describe(path: &Path, text: &str, json: bool, e: &RuleFileError) -> String {
    let json_lines = json.then(|| JsonLines::new(text));
    let mut problems: Vec<(usize, &str, &str)> = e
        .errors
        .iter()
        .map(|err| {
            let line = err.line.or_else(|| json_lines.as_ref().map(|l| l.line_of(&err.field))).unwrap_or(1);
            let field = if err.field.is_empty() { located::DOCUMENT } else { &err.field };
            (line, field, err.rule.as_str())
        })
        .collect();
    problems.sort_by_key(|(line, _, _)| *line);
    let file = path.display().to_string();
    problems.iter().map(|(line, field, rule)| located::at(&file, *line, field, rule)).collect::<Vec<_>>().join("\n")
}

/// A site's conversion definitions as read from their file, with where each
/// sits in it for errors.
pub struct Conversions {
    definitions: Definitions,
    file: String,
    lines: JsonLines,
}

impl Conversions {
    /// `FILE:LINE: conversions[1].stage: …`: the core names definitions by
    /// their index in the list, which is the file's top level.
    fn locate(&self, e: &ValidationError) -> String {
        let in_file = e.field.strip_prefix("conversions").unwrap_or(&e.field);
        located::at(&self.file, self.lines.line_of(in_file), &e.field, &e.rule)
    }

    /// The stages these definitions enter under `rules`; an error names the
    /// definition's line and its `stage`.
    pub fn stages(&self, rules: &Rules) -> Result<ConversionStages, String> {
        self.definitions.stages(rules).map_err(|e| self.locate(&e))
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }
}

/// Reads a JSON list of conversion definitions; an error names the file,
/// the line and the field (`conversions[1].stage`).
pub fn load_conversions(path: &Path) -> Result<Conversions, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {file}: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        let (line, problem) = located::json_syntax(&e);
        located::at(&file, line, located::DOCUMENT, problem)
    })?;
    let mut c = Conversions { definitions: Definitions::default(), file, lines: JsonLines::new(&text) };
    c.definitions = Definitions::from_json(&value).map_err(|e| c.locate(&e))?;
    Ok(c)
}

/// Loads a rule file for other commands; a bad file is an error listing its problems.
pub fn load(path: &Path) -> Result<Rules, String> {
    parse(path)?.map_err(|problems| format!("invalid rule file\n{problems}"))
}
