//! Who may talk to the web view, and the headers of every answer.
//!
//! It listens on loopback, but any local program, and any web page the
//! person's browser shows, can send it requests. So:
//! - the printed link carries a one-time token; its first use sets a session
//!   cookie (HttpOnly, SameSite=Strict) and the token is spent;
//! - every request needs that cookie (401 otherwise);
//! - the Host must be the loopback address it printed (a DNS-rebinding page
//!   sends its own host name);
//! - a POST must come from the web view's own origin and carry the form token
//!   of its pages (a cross-site form or fetch has neither);
//! - a strict Content-Security-Policy: only the view's own script and styles.

use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::Shared;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "lj_session";

/// The policy of every answer: the view's own script and styles, no frames, no other origin.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) struct Auth {
    port: u16,
    /// The link's token until its first use.
    login: Mutex<Option<String>>,
    session: String,
    /// Put in every form of the pages, checked on every POST.
    form_token: String,
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in a time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub(crate) fn new(port: u16) -> Auth {
        Auth { port, login: Mutex::new(Some(random_hex())), session: random_hex(), form_token: random_hex() }
    }

    /// The link's token (empty once spent).
    pub(crate) fn login_token(&self) -> String {
        self.login.lock().map(|l| l.clone().unwrap_or_default()).unwrap_or_default()
    }

    pub(crate) fn form_token(&self) -> &str {
        &self.form_token
    }

    pub(crate) fn form_token_ok(&self, given: &str) -> bool {
        same_secret(given, &self.form_token)
    }

    /// Spends the link's token if `given` is it.
    fn log_in(&self, given: &str) -> bool {
        let Ok(mut login) = self.login.lock() else { return false };
        if login.as_deref().is_some_and(|t| same_secret(t, given)) {
            *login = None;
            return true;
        }
        false
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        cookie(headers, COOKIE).is_some_and(|v| same_secret(v, &self.session))
    }

    /// The hosts this view answers to: the address it printed, and `localhost`.
    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
        host == format!("127.0.0.1:{}", self.port) || host == format!("localhost:{}", self.port)
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) else { return false };
        origin == format!("http://127.0.0.1:{}", self.port) || origin == format!("http://localhost:{}", self.port)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The query without its `token` parameter.
fn without_token(query: &str) -> String {
    query.split('&').filter(|p| !p.starts_with("token=") && !p.is_empty()).collect::<Vec<_>>().join("&")
}

fn token_param(query: &str) -> Option<&str> {
    query.split('&').find_map(|p| p.strip_prefix("token="))
}

/// Checks every request (see the module's doc), then sets the headers of every answer.
pub(crate) async fn guard(State(ui): State<Shared>, request: Request, next: Next) -> Response {
    let auth = &ui.auth;
    let mut response = check(auth, request, next).await;
    secure(response.headers_mut());
    response
}

async fn check(auth: &Auth, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !auth.host_ok(headers) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This web view answers only to the address it printed (http://127.0.0.1:PORT/).",
        );
    }
    let uri = request.uri().clone();
    if let Some(token) = uri.query().and_then(token_param) {
        if request.method() == Method::GET && auth.log_in(token) {
            let rest = without_token(uri.query().unwrap_or_default());
            let to = if rest.is_empty() { uri.path().to_string() } else { format!("{}?{rest}", uri.path()) };
            let mut response = Redirect::to(&to).into_response();
            let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", auth.session);
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            return response;
        }
        if !auth.has_session(headers) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "This link was used already (it works once, in one browser).\nRun `kubectl lifecycle ui` again for a new one.",
            );
        }
    }
    if !auth.has_session(headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Open the link that `kubectl lifecycle ui` printed (it logs this browser in), or run it again for a new one.",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD && !auth.origin_ok(headers) {
        return refuse(StatusCode::FORBIDDEN, "Refused: this action does not come from the web view's own pages.");
    }
    next.run(request).await
}

/// A plain page that says why, with no data in it.
fn refuse(status: StatusCode, why: &str) -> Response {
    let page = super::pages::refusal(status, why);
    let mut response = (status, axum::response::Html(page.into_string())).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Cookie"));
    }
    response
}

fn secure(headers: &mut HeaderMap<HeaderValue>) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(headers, "cross-origin-resource-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_link_works_once() {
        let auth = Auth::new(7000);
        let token = auth.login_token();
        assert_eq!(token.len(), 64);
        assert!(!auth.log_in("nope"));
        assert!(auth.log_in(&token));
        assert!(!auth.log_in(&token), "spent");
        assert_eq!(auth.login_token(), "");
    }

    #[test]
    fn only_the_session_cookie_lets_in() {
        let auth = Auth::new(7000);
        let good = format!("a=b; {COOKIE}={}", auth.session);
        assert!(auth.has_session(&headers(&[("cookie", &good)])));
        assert!(!auth.has_session(&headers(&[("cookie", "lj_session=0000")])));
        assert!(!auth.has_session(&headers(&[])));
    }

    #[test]
    fn hosts_and_origins_are_the_printed_ones() {
        let auth = Auth::new(7000);
        assert!(auth.host_ok(&headers(&[("host", "127.0.0.1:7000")])));
        assert!(auth.host_ok(&headers(&[("host", "localhost:7000")])));
        assert!(!auth.host_ok(&headers(&[("host", "evil.example:7000")])));
        assert!(!auth.host_ok(&headers(&[("host", "127.0.0.1:7001")])));
        assert!(auth.origin_ok(&headers(&[("origin", "http://127.0.0.1:7000")])));
        assert!(!auth.origin_ok(&headers(&[("origin", "http://evil.example")])));
        assert!(!auth.origin_ok(&headers(&[("origin", "null")])));
        assert!(!auth.origin_ok(&headers(&[])));
    }

    #[test]
    fn the_token_leaves_the_address() {
        assert_eq!(without_token("token=abc"), "");
        assert_eq!(without_token("project=a&token=abc&state=started"), "project=a&state=started");
        assert_eq!(token_param("x=1&token=abc"), Some("abc"));
    }
}
