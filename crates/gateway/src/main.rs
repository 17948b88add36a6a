//! The `mcp-guard` binary: parses arguments and hands over to the library.

use clap::Parser;

fn main() -> mcp_guard::cli::Exit {
    mcp_guard::cli::run(mcp_guard::cli::Cli::parse())
}
