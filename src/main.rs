//! The `js-mcp` binary: one image, every role (operator, server, local cluster, CRD printer).

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: per-thread free lists without arena locks, for a
/// request path that allocates per message.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// js-mcp: operator and embedded MCP server for fleets of MCP servers.
#[derive(Parser, Debug)]
#[command(name = "js-mcp", version, about)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, env = "JSMCP_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the embedded session/workflow MCP server.
    Serve(Box<js_mcp::server::ServeArgs>),
    /// Run the controllers for the js-mcp custom resources.
    Operator(js_mcp::operator::OperatorArgs),
    /// Print the CRD YAML (the source of `crds/`).
    Crds,
    /// Run a local control plane, the operator and a node agent: js-mcp with no cluster.
    Local(js_mcp::local::LocalArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    js_mcp::telemetry::init(cli.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => js_mcp::server::run(*args).await,
            Command::Operator(args) => Ok(js_mcp::operator::run(args).await?),
            Command::Crds => {
                print!("{}", js_mcp::api::crds_yaml()?);
                Ok(())
            }
            Command::Local(args) => js_mcp::local::run(args).await,
        }
    })
}
