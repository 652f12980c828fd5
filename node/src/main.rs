//! The `plexus` binary: parses the command line and runs the command (see `cli`).

fn main() -> std::process::ExitCode {
    plexus_node::run_cli()
}
