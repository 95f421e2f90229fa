//! `lifecycle-webhook`: the server binary (`server::run`), and the chart's install
//! check `lifecycle-webhook wait-routable`.

use clap::Parser;
use lifecycle_webhook::run;
use lifecycle_webhook::{config::Config, routable, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The chart's install check, a tool of its own: kept out of `Config` so
    // the server's flags (and the environment variables they read) stay as they are.
    if std::env::args_os().nth(1).is_some_and(|a| a == "wait-routable") {
        return routable::run(routable::Args::parse_from(std::env::args_os().skip(1))).await;
    }
    let config = Config::parse().resolve()?;
    telemetry::init(config.log_format);
    run(config).await
}
