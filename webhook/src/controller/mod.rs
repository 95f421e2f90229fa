//! The environment controller. Placeholder until implemented.

use crate::state::AppState;

pub async fn run(_state: AppState) -> anyhow::Result<()> {
    futures::future::pending::<()>().await;
    Ok(())
}
