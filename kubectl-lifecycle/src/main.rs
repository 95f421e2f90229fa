//! `kubectl lifecycle`: the kubectl plugin of lifecycle-jobs.

mod cli;
mod client;
mod clone;
mod env;
mod jobs;
mod logs;
mod output;
mod outputs;
mod run;
mod table;
mod wait;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, EnvCommand};
use client::Ctx;
use env::Action;

fn main() -> ExitCode {
    // Usage errors exit 2, help and version 0 (clap's conventions).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::connect(&cli.global).await?;
    match &cli.command {
        Command::Env(cmd) => match cmd {
            EnvCommand::List(a) => env::list(&ctx, a).await,
            EnvCommand::Status(a) => env::status(&ctx, a).await,
            EnvCommand::Create(a) => env::create(&ctx, a).await,
            EnvCommand::Start(a) => env::transition(&ctx, Action::Start, a).await,
            EnvCommand::Stop(a) => env::transition(&ctx, Action::Stop, a).await,
            EnvCommand::Redeploy(a) => env::transition(&ctx, Action::Redeploy, a).await,
            EnvCommand::Delete(a) => env::transition(&ctx, Action::Delete, a).await,
        },
        Command::Run(a) => run::run(&ctx, a).await,
        Command::Outputs(a) => outputs::run(&ctx, a).await,
        Command::Logs(a) => logs::run(&ctx, a).await,
        Command::Clone(a) => clone::run(&ctx, a).await,
    }
}
