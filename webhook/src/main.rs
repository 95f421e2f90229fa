use clap::Parser;
use lifecycle_webhook::{config::Config, server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    server::run(config).await
}
