//! `microfunnel-cli`: the command line over `microfunnel-core` — attribution on
//! exported journeys, lead scoring of event files, rule-file checks, and a
//! site's administration on a running collector (sites, tokens, share links).
//!
//! What it must never do: hold domain logic of its own. It reads files, calls
//! the core and prints; a credit or a score computed here would drift from the
//! browser's and the Worker's.

pub mod access;
pub mod attribute;
pub mod clv;
pub mod http;
pub mod located;
pub mod rules;
pub mod score;
pub mod site;

/// Writes one line of output. A closed pipe (`microfunnel … | head`) is not
/// an error worth a panic: the reader has what it wanted.
pub fn emit(text: &str) -> Result<(), String> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing output: {e}")),
        _ => Ok(()),
    }
}
