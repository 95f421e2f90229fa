//! `kubectl lifecycle`: the kubectl plugin of lifecycle-jobs.

mod cli;
mod client;
mod clone;
mod env;
mod environment;
mod jobs;
mod logs;
mod output;
mod outputs;
mod run;
mod sanitize;
mod table;
mod ui;
mod variable;
mod vars;
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
            crate::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<cli::UsageError>().is_some() => {
            crate::errln!("error: {e:#}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(e) => {
            crate::errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    // Usage checks first: they need no cluster.
    let transition = match &cli.command {
        Command::Env(EnvCommand::Start(a)) => Some((Action::Start, a.namespace(&cli.global, "start")?, a)),
        Command::Env(EnvCommand::Stop(a)) => Some((Action::Stop, a.namespace(&cli.global, "stop")?, a)),
        Command::Env(EnvCommand::Redeploy(a)) => Some((Action::Redeploy, a.namespace(&cli.global, "redeploy")?, a)),
        Command::Env(EnvCommand::Delete(a)) => Some((Action::Delete, a.namespace(&cli.global, "delete")?, a)),
        _ => None,
    };
    let ctx = Ctx::connect(&cli.global).await?;
    if let Some((action, name, args)) = transition {
        return env::transition(&ctx, action, &name, args).await;
    }
    match &cli.command {
        Command::Env(EnvCommand::List(a)) => env::list(&ctx, a).await,
        Command::Env(EnvCommand::Status(a)) => env::status(&ctx, a).await,
        Command::Env(EnvCommand::Create(a)) => env::create(&ctx, a).await,
        Command::Env(EnvCommand::Vars(a)) => vars::run(&ctx, a).await,
        Command::Env(_) => unreachable!("transitions are handled above"),
        Command::Run(a) => run::run(&ctx, a).await,
        Command::Outputs(a) => outputs::run(&ctx, a).await,
        Command::Logs(a) => logs::run(&ctx, a).await,
        Command::Clone(a) => clone::run(&ctx, a).await,
        Command::Ui(a) => ui::run(ctx, cli.global.namespace.as_deref(), a).await,
    }
}
