//! Handing the output file to the server: `POST {SERVER_URL}/v1/outputs`
//! with retries until the grace period runs short.

use std::time::{Duration, Instant};

use lifecycle_contract::names::{AGENT_ERROR_HEADER, OUTPUTS_API_PATH};

use crate::http::{Client, HttpError, Response};
use crate::log;

/// What is sent.
pub enum Submission {
    /// The raw bytes of the file, valid or not (the server checks it again and
    /// records a rejection with its details).
    File(Vec<u8>),
    /// The file could not be read safely: an empty body and this one-line
    /// reason in the `lifecycle-agent-error` header.
    Unreadable(String),
    /// No file, or an empty one: an empty body, so that the server notes the
    /// pod's end (no outputs; the job's earlier ones stay).
    Nothing,
}

/// How a publication ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the server's message.
    Published(String),
    /// Not published: the one-line reason (for the termination message).
    Failed(String),
}

pub const FIRST_DELAY: Duration = Duration::from_millis(250);
pub const MAX_DELAY: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Delay before retry number `attempt` (1-based): 250 ms doubling up to 5 s,
/// with "equal jitter" (half fixed, half random; `random` in `[0, 1)`).
pub fn backoff(attempt: u32, random: f64) -> Duration {
    let exp = FIRST_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let d = exp.min(MAX_DELAY);
    d / 2 + d.mul_f64(random.clamp(0.0, 1.0) / 2.0)
}

/// Statuses worth a retry: the server is not ready or is overloaded.
pub fn retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || status >= 500
}

/// The `message` of a JSON response body (`{"message": "...", "errors": ["..."]}`),
/// followed by its `errors`; else the start of the body. One line.
pub fn server_message(resp: &Response) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        message: Option<String>,
        #[serde(default)]
        errors: Vec<String>,
    }
    let text = match serde_json::from_slice::<Body>(&resp.body) {
        Ok(Body { message: Some(m), errors }) if errors.is_empty() => m,
        Ok(Body { message: Some(m), errors }) => format!("{m}: {}", errors.join("; ")),
        _ => String::from_utf8_lossy(&resp.body).into_owned(),
    };
    one_line(&text, 3000)
}

/// `text` on one line of at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let mut s: String = text.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).take(max + 1).collect();
    if s.chars().count() > max {
        s = s.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
    }
    s
}

/// A header value: printable ASCII only.
fn header_value(text: &str) -> String {
    one_line(text, 300).chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

pub struct Publisher<'a> {
    pub client: &'a Client,
    pub token_file: &'a std::path::Path,
}

impl Publisher<'_> {
    /// Posts until a final answer or until `deadline`.
    pub fn publish(&self, submission: &Submission, deadline: Instant) -> Outcome {
        let started = Instant::now();
        let mut attempt = 0u32;
        let (body, error_header) = match submission {
            Submission::File(b) => (b.as_slice(), None),
            Submission::Nothing => (&[][..], None),
            Submission::Unreadable(reason) => (&[][..], Some(header_value(reason))),
        };
        let last_error = loop {
            attempt += 1;
            let (error, retry_after) = match self.attempt(body, error_header.as_deref(), deadline) {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    let msg = server_message(&resp);
                    log::info("published", &[("status", &resp.status), ("attempt", &attempt), ("server_message", &msg)]);
                    return Outcome::Published(msg);
                }
                Ok(resp) if retryable(resp.status) => {
                    let retry_after = resp
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)));
                    (format!("server answered {}: {}", resp.status, server_message(&resp)), retry_after)
                }
                Ok(resp) => {
                    let reason = format!("server answered {}: {}", resp.status, server_message(&resp));
                    log::error(
                        "publish-refused",
                        &[("status", &resp.status), ("attempt", &attempt), ("server_message", &server_message(&resp))],
                    );
                    return Outcome::Failed(reason);
                }
                Err(e) => (e, None),
            };
            let delay = retry_after.unwrap_or_else(|| backoff(attempt, random_fraction()));
            let now = Instant::now();
            if now + delay >= deadline {
                break error;
            }
            log::warn("publish-retry", &[("attempt", &attempt), ("retry_in_ms", &delay.as_millis()), ("error", &error)]);
            std::thread::sleep(delay);
        };
        let reason = format!(
            "gave up after {attempt} attempt{} in {:.1}s: {last_error}",
            if attempt == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
        log::error("publish-failed", &[("attempts", &attempt), ("error", &last_error)]);
        Outcome::Failed(reason)
    }

    fn attempt(&self, body: &[u8], error_header: Option<&str>, deadline: Instant) -> Result<Response, String> {
        // Projected tokens rotate: read it fresh each time.
        let token = std::fs::read_to_string(self.token_file)
            .map_err(|e| format!("cannot read the token {}: {e}", self.token_file.display()))?;
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("the token {} is empty or malformed", self.token_file.display()));
        }
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        if let Some(h) = error_header {
            headers.push((AGENT_ERROR_HEADER, h));
        }
        let request_deadline = deadline.min(Instant::now() + REQUEST_TIMEOUT);
        self.client.post(OUTPUTS_API_PATH, &headers, body, request_deadline).map_err(|e: HttpError| e.to_string())
    }
}

fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// 64 random bits from the kernel, for the retry jitter.
fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    if n != 8 {
        // Never expected; fall back to the clock.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule() {
        let ms = |a, r| backoff(a, r).as_millis();
        // Without jitter (random = 0): half of 250, 500, 1000, 2000, 4000, 5000, 5000...
        let low: Vec<_> = (1..=8).map(|a| ms(a, 0.0)).collect();
        assert_eq!(low, vec![125, 250, 500, 1000, 2000, 2500, 2500, 2500]);
        // With the most jitter: the whole delay.
        let high: Vec<_> = (1..=8).map(|a| ms(a, 0.999_999_9)).collect();
        assert_eq!(high, vec![249, 499, 999, 1999, 3999, 4999, 4999, 4999]);
        assert_eq!(ms(1000, 0.5), 3750);
        for _ in 0..100 {
            let d = backoff(3, random_fraction());
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000));
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413, 422] {
            assert!(!retryable(s), "{s}");
        }
    }

    #[test]
    fn messages() {
        let r = |body: &str| Response { status: 422, headers: vec![], body: body.as_bytes().to_vec() };
        assert_eq!(server_message(&r(r#"{"message": "rejected:\nline 2", "x": 1}"#)), "rejected: line 2");
        assert_eq!(server_message(&r("plain text")), "plain text");
        assert_eq!(
            server_message(&r(r#"{"message": "rejected", "errors": ["line 1: a", "line 2: b"]}"#)),
            "rejected: line 1: a; line 2: b"
        );
        assert_eq!(one_line(&"x".repeat(20), 10), format!("{}…", "x".repeat(9)));
        assert_eq!(header_value("a\nb é"), "a b ?");
    }
}
