//! The web view, `kubectl lifecycle ui`, end to end in a real headless Chromium.

use anyhow::{Result, ensure};
use lifecycle_e2e::browser::Browser;

/// The harness itself: Chromium starts headless through chromedriver and renders a page.
#[tokio::test]
async fn ui_browser_starts_and_renders_a_page() -> Result<()> {
    let browser = Browser::start().await?;
    browser.goto("data:text/html,<title>t</title><p id=x>hello</p><script>document.body.dataset.ready='1'</script>").await?;
    let text = browser.wait_text("#x", "hello", lifecycle_e2e::browser::PAGE_WAIT, |t| t == "hello").await?;
    ensure!(text == "hello");
    browser.wait_attr("body", "data-ready", "scripts run", lifecycle_e2e::browser::PAGE_WAIT, |v| v == "1").await?;
    browser.close().await
}
