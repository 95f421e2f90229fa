//! The delays between the attempts of a call retried at start-up or in the
//! background: doubled after each failure, capped, for a fixed number of attempts.

use std::time::Duration;

/// Yields the delay to wait before each further attempt; `None` once every
/// attempt has been made (no wait after the last one).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    attempts_left: u32,
}

impl Backoff {
    /// `attempts` in all (the first one included), the first delay `first`, none longer than `max`.
    pub(crate) const fn new(first: Duration, max: Duration, attempts: u32) -> Self {
        Backoff { next: first, max, attempts_left: attempts.saturating_sub(1) }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempts_left == 0 {
            return None;
        }
        self.attempts_left -= 1;
        let delay = self.next.min(self.max);
        self.next = delay.saturating_mul(2);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_stops_after_the_last_attempt() {
        let ms = |v: u64| Duration::from_millis(v);
        let delays: Vec<_> = Backoff::new(ms(500), ms(3000), 6).collect();
        assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(3000), ms(3000)]);
        assert_eq!(Backoff::new(ms(500), ms(3000), 1).count(), 0);
        assert_eq!(Backoff::new(ms(500), ms(3000), 0).count(), 0);
    }
}
