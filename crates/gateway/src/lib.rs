//! mcp-guard: authentication and authorization in front of MCP servers.
//!
//! Guarantees:
//! - Configuration is checked whole before anything acts on it; every error names file, line,
//!   column and key, and never echoes a secret.
//! - Decisions come only from `mcp-guard-core`; this crate gathers inputs and reports results.

pub mod cli;
pub mod config;
pub mod serve;
pub mod stdio_front;
pub mod tokens;
