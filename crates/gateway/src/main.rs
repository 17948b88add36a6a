//! The `mcp-guard` binary: parses arguments and hands over to the library.

use clap::Parser;

// glibc malloc was a fifth of the gateway's CPU per proxied request (docs/PERFORMANCE.md); the
// request path allocates many small, short-lived buffers across threads, which mimalloc serves
// from thread-local pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> mcp_guard::cli::Exit {
    mcp_guard::cli::run(mcp_guard::cli::Cli::parse())
}
