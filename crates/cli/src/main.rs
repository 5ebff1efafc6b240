//! `microfunnel`: the command line over `microfunnel-core` — attribution on
//! exported journeys, lead scoring of event files, customer value, rule-file checks, site
//! creation on a running collector.
//!
//! What it must never do: hold domain logic of its own. It reads files, calls
//! the core and prints; a credit or a score computed here would drift from the
//! browser's and the Worker's.

use clap::{Parser, Subcommand};
use microfunnel_cli::{access, attribute, clv, rules, score, site};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "microfunnel", version, about = "Consent-aware lead scoring and attribution")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attribute conversions on exported journeys (ChannelAttribution CSV or NDJSON).
    Attribute(attribute::Args),
    /// Customer value: BG/NBD and Gamma-Gamma fitted on purchase histories.
    Clv(clv::Args),
    /// Score a visitor from a Segment-spec NDJSON event file.
    Score(score::Args),
    /// Rule-file tools.
    Rules(rules::Args),
    /// Site administration on a running collector.
    Site(site::Args),
    /// A site's tokens on a running collector.
    Token(access::TokenArgs),
    /// A site's read-only share links on a running collector.
    Share(access::ShareArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attribute(args) => attribute::run(args),
        Command::Clv(args) => clv::run(args),
        Command::Score(args) => score::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Site(args) => site::run(args),
        Command::Token(args) => access::run_token(args),
        Command::Share(args) => access::run_share(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
