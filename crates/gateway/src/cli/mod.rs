//! The command line. Exit codes are a contract: 0 allow / valid / all passed, 1 deny / failed,
//! 2 usage or configuration error, 3 runtime failure.

#![expect(clippy::print_stdout, reason = "the CLI prints its answer on stdout")]

mod check;
mod client;
mod config_check;
mod demo;
mod keys;
mod passthrough;
mod policy_test;
mod request;
mod serve;
mod stdio;
mod token;

use std::path::PathBuf;
use std::process::{ExitCode, Termination};

use clap::{Args, Parser, Subcommand};

/// What the process reports to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: allowed, valid, every test passed.
    Ok,
    /// 1: denied, invalid, a test failed.
    Fail,
    /// 2: usage or configuration error.
    Usage,
    /// 3: runtime failure.
    Runtime,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Fail => 1,
            Exit::Usage => 2,
            Exit::Runtime => 3,
        }
    }
}

impl Termination for Exit {
    fn report(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

const EXIT_CODES: &str = "Exit codes: 0 allow / valid / all tests passed, 1 deny / a test failed, \
2 usage or configuration error, 3 runtime failure.";

/// Authentication and authorization for MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: authenticated, authorized MCP over streamable HTTP in front of the
    /// configured upstream (the bundled demo server by default).
    Serve(ServeArgs),
    /// Guard a local MCP server over stdio: the client starts `mcp-guard stdio -- CMD ARGS...`
    /// instead of the server; every message is authorized, lists are filtered, decisions audited.
    #[command(after_help = STDIO_HELP)]
    Stdio(StdioArgs),
    /// Run the bundled demo MCP server (what the default configuration puts behind the gateway).
    #[command(subcommand)]
    Demo(DemoCommand),
    /// Decide one request as the gateway would, and explain why.
    #[command(after_help = EXIT_CODES)]
    Check(Box<CheckArgs>),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Issue, verify and revoke the gateway's tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The gateway's signing keys (kept in the state store).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Confidential OAuth clients in the configuration file.
    #[command(subcommand)]
    Client(ClientCommand),
}

/// Arguments of `mcp-guard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen here instead of `server.bind`, e.g. `127.0.0.1:0` for any free port.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<std::net::SocketAddr>,
    /// Log lines as text for people (default) or as JSON objects for log pipelines. `RUST_LOG`
    /// chooses what is logged (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Arguments of `mcp-guard stdio`.
#[derive(Debug, Args)]
pub struct StdioArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines (on standard error) as text or as JSON objects. `RUST_LOG` chooses what is
    /// logged (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The MCP server to start and guard, after `--`: its program and arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

const STDIO_HELP: &str = "\
Example:
  MCP_GUARD_TOKEN=$(mcp-guard token issue --sub alice) \\
    mcp-guard stdio --config mcp-guard.toml -- node server.js stdio

Standard output carries only MCP messages, one JSON-RPC message per line. Logs go to standard
error; audit lines to `[audit] path` (a file or `stderr`; `stdout` is refused).

Who is asking:
  MCP_GUARD_TOKEN   an access token, verified as a bearer token would be (this guard's own
                    tokens, or a `[[issuers]]` issuer's) at start and again before every
                    message: once it expires or is revoked, further requests are refused.
  [stdio] identity  without MCP_GUARD_TOKEN, the configured local identity, e.g.
                    `identity = { subject = \"me\", roles = [\"user\"] }`.
  With neither, nothing starts (exit 2). A set but invalid token never falls back to the
  identity (exit 1).

Environment:
  MCP_GUARD_TOKEN   as above; never passed to the server.
  JWT_SECRET        (or `token.secret_env`) the HS256 secret, when `token.algorithm` is HS256;
                    never passed to the server.
  RUST_LOG          what is logged, e.g. `debug` (default `info`).
The server gets only `[stdio]` `inherit_env` (default PATH, HOME, LANG, TZ), `env` and
`env_from`, and runs in its own process group, which is killed when the client closes its
input, the guard gets SIGTERM or SIGINT, or the guard stops.

Exit codes: 0 the client closed its input (or SIGTERM/SIGINT), 1 the token in MCP_GUARD_TOKEN is
not valid, 2 usage or configuration error (also: no principal), 3 runtime failure (the server
cannot start or exited on its own, the state store is unreachable).";

/// How `serve` writes its logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `mcp-guard demo ...`.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Serve one MCP session on stdin and stdout (logs on stderr).
    Stdio,
    /// Serve MCP over streamable HTTP at `/mcp`, one session per `initialize`.
    Http(DemoHttpArgs),
    /// A pass-through HTTP proxy with NO authentication, the baseline of `bench/load.sh`: the
    /// same HTTP server, client, runtime and allocator as `serve`, without the guard's own work.
    /// Listens on loopback only.
    Passthrough(PassthroughArgs),
}

/// Arguments of `mcp-guard demo passthrough`.
#[derive(Debug, Args)]
pub struct PassthroughArgs {
    /// Loopback address to listen on; the address in use is printed on stderr as
    /// `mcp-guard demo: passthrough on http://ADDR/mcp`.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub bind: std::net::SocketAddr,
    /// The MCP endpoint every POST is forwarded to, e.g. `http://127.0.0.1:8001/mcp`.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
}

/// Arguments of `mcp-guard demo http`.
#[derive(Debug, Args)]
pub struct DemoHttpArgs {
    /// Address to listen on. Port 0 picks a free port; the address in use is printed on stderr
    /// as `mcp-guard demo: listening on http://ADDR/mcp`.
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDR")]
    pub bind: std::net::SocketAddr,
    /// Also accept requests whose `Host` header is HOST. Loopback names are always accepted;
    /// any other `Host` gets 403 (a guard against DNS rebinding).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
}

/// `mcp-guard client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client: writes the argon2 hash of a new secret and prints the secret once.
    Add(ClientAddArgs),
    /// List the clients (never their secrets).
    List(KeysArgs),
    /// Remove a client.
    Remove(ClientIdArgs),
}

/// Arguments of `mcp-guard client add`.
#[derive(Debug, Args)]
pub struct ClientAddArgs {
    /// The configuration file to add it to (default: ./mcp-guard.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A role its client_credentials tokens carry (repeatable).
    #[arg(long = "role", value_name = "R")]
    pub roles: Vec<String>,
    /// A scope it may request (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Allow it to call the introspection endpoint.
    #[arg(long)]
    pub introspect: bool,
    /// The client id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Arguments of `mcp-guard client remove`.
#[derive(Debug, Args)]
pub struct ClientIdArgs {
    /// The configuration file (default: ./mcp-guard.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The client id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `mcp-guard token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new access token (with --refresh, a JSON object with both tokens).
    #[command(after_help = EXIT_CODES)]
    Issue(TokenIssueArgs),
    /// Check a token: prints the verdict and claims; exit 0 valid, 1 not.
    #[command(after_help = EXIT_CODES)]
    Verify(TokenVerifyArgs),
    /// Revoke a token until it expires (a refresh token: its whole family).
    #[command(after_help = EXIT_CODES)]
    Revoke(TokenRevokeArgs),
}

/// `mcp-guard keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a signing key if none is active, and print the active key id.
    Generate(KeysArgs),
    /// Make a new signing key; the old one stays published until its tokens have expired.
    Rotate(KeysArgs),
    /// List the keys in the store.
    List(KeysArgs),
    /// Print the JWKS of the published public keys (what resource servers verify against).
    Jwks(KeysArgs),
}

/// Arguments of `mcp-guard keys ...`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON (for `list`).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `mcp-guard token issue`.
#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The subject (`sub`).
    #[arg(long, value_name = "ID")]
    pub sub: String,
    /// The client the token is issued to (`client_id`; refresh tokens are bound to it).
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// A role (repeatable).
    #[arg(long = "role", value_name = "R")]
    pub roles: Vec<String>,
    /// A permission pattern for the `permissions` claim (repeatable).
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
    /// A scope (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. `30m`, `1h` (default: `token.access_token_expiry`).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Also issue a refresh token.
    #[arg(long)]
    pub refresh: bool,
}

/// Arguments of `mcp-guard token verify`.
#[derive(Debug, Args)]
pub struct TokenVerifyArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The token.
    #[arg(value_name = "TOKEN")]
    pub token: String,
}

/// Arguments of `mcp-guard token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The token.
    #[arg(value_name = "TOKEN")]
    pub token: String,
}

/// `mcp-guard policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run a table of decision cases (`[[case]]` in TOML) against a configuration.
    #[command(after_help = EXIT_CODES)]
    Test(PolicyTestArgs),
}

/// `mcp-guard config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate everything a start would: patterns, groups, roles, policies, regexes, files.
    #[command(after_help = EXIT_CODES)]
    Check(ConfigCheckArgs),
}

/// Arguments of `mcp-guard check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The principal's subject (`sub`, or `client:<id>`).
    #[arg(long, value_name = "ID")]
    pub subject: String,
    /// The principal's issuer; omitted means this gateway's own tokens.
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// A role from the credential, added to what the config assigns (repeatable).
    #[arg(long = "role", value_name = "R")]
    pub roles: Vec<String>,
    /// A permission pattern from the credential's `permissions` claim (repeatable).
    #[arg(long = "permission", value_name = "P")]
    pub permissions: Vec<String>,
    /// An OAuth scope; it grants only through `scope_map` (repeatable).
    #[arg(long = "scope", value_name = "S")]
    pub scopes: Vec<String>,
    /// An attribute, e.g. `subject.department="eng"`, `hr.level=3`, `environment.time=1795665360`.
    /// A value that is not valid JSON is taken as a string (repeatable).
    #[arg(long = "attr", value_name = "PATH=JSON")]
    pub attrs: Vec<String>,
    /// An attribute provider to treat as failed: its attributes are unknown (repeatable).
    #[arg(long = "unavailable", value_name = "PROVIDER")]
    pub unavailable: Vec<String>,
    /// The MCP method, e.g. `tools/call`.
    #[arg(long, value_name = "M")]
    pub method: String,
    /// The tool or prompt name (`params.name`; for tasks, the task id).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// The resource URI (`params.uri`).
    #[arg(long, value_name = "U")]
    pub uri: Option<String>,
    /// A tool or prompt argument (repeatable); a value that is not valid JSON is a string.
    #[arg(long = "arg", value_name = "KEY=JSON")]
    pub args: Vec<String>,
    /// A JSON `tools/list` result giving upstream tool annotations (for annotation groups).
    #[arg(long, value_name = "FILE")]
    pub annotations: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `mcp-guard policy test`.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The TOML file of `[[case]]` tables.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `mcp-guard config check`.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The configuration file (default: ./mcp-guard.toml, else the built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Stdio(args) => stdio::run(&args),
        Command::Demo(cmd) => demo::run(cmd),
        Command::Check(args) => check::run(&args),
        Command::Policy(PolicyCommand::Test(args)) => policy_test::run(&args),
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&args),
        Command::Token(TokenCommand::Issue(args)) => token::issue(&args),
        Command::Token(TokenCommand::Verify(args)) => token::verify(&args),
        Command::Token(TokenCommand::Revoke(args)) => token::revoke(&args),
        Command::Keys(cmd) => keys::run(&cmd),
        Command::Client(cmd) => client::run(&cmd),
    }
}
