//! `tokengate`: the command-line tool over the filter's own core.
//!
//! Every command here is a thin shell around the `tokengate` library: keys
//! are built by `keys`, tokens signed and checked by `token`, requests
//! decided by `Config::decide`, lists written by `revocation::Document`,
//! configurations parsed by `Config::from_json`, exactly as the filter in
//! Envoy does. What this crate adds is what a terminal needs: arguments,
//! files, the clock, randomness, and output people and scripts can read.
//!
//! Exit status: 0 done (allowed, valid); 1 the answer is no (`verify`
//! refused, `check-config` found errors, `inspect` found no readable
//! token); 2 the command could not run (bad usage, an unreadable file, an
//! unset variable). Errors are one line on stderr.

mod check_config;
mod envoy;
mod inspect;
mod keygen;
mod list_file;
mod manifests;
mod mint;
mod package_oci;
mod resign;
mod revoke;
mod util;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// HMAC-signed API token gate for Envoy: keys, tokens, decisions,
/// revocation lists and configuration checks, with the filter's own core.
#[derive(Parser)]
#[command(
    name = "tokengate",
    version,
    propagate_version = true,
    after_help = "Exit status: 0 done (allowed, valid); 1 refused or invalid; 2 bad usage or an error.\n\n\
Example:\n  tokengate keygen --kid 2026-11 > key.json\n  tokengate mint --key-file key.json --sub alice --scope orders:read | tokengate inspect -"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Keygen(keygen::Args),
    Mint(mint::Args),
    Inspect(inspect::Args),
    Verify(verify::Args),
    Revoke(revoke::Args),
    Resign(resign::Args),
    CheckConfig(check_config::Args),
    PackageOci(package_oci::Args),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        // A reader that went away (`| head -1`) is no error of ours.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` joins the context chain on one line.
            util::errln(format_args!("error: {}", one_line(&format!("{err:#}"))));
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return Ok(usage_error(&err)),
    };
    match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Mint(args) => mint::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Revoke(args) => revoke::run(args),
        Command::Resign(args) => resign::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::PackageOci(args) => package_oci::run(args),
    }
}

/// Prints a clap error as one line naming what is wrong, then the usage
/// line as a hint; `--help` and `--version` go to stdout with status 0.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = err.render().to_string();
    // clap's message is its first paragraph; usage and tips follow.
    let message = text.split("\n\n").next().unwrap_or(&text);
    let message = one_line(message);
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    util::errln(format_args!("error: {message}"));
    if let Some(usage) = text.lines().find(|l| l.starts_with("Usage: ")) {
        let command = usage
            .split_whitespace()
            .nth(2)
            .filter(|w| !w.starts_with(['[', '<', '-']))
            .map(|w| format!(" {w}"))
            .unwrap_or_default();
        util::errln(format_args!("{usage}  (see 'tokengate{command} --help')"));
    }
    ExitCode::from(2)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Collapses a message onto one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
