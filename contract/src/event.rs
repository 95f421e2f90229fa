//! Lifecycle events.

use std::fmt;
use std::str::FromStr;

/// An environment event a lifecycle job can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    Start,
    Stop,
    Delete,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Start, Event::Stop, Event::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Stop => "stop",
            Event::Delete => "delete",
        }
    }

    /// Parses the `on` annotation: a comma list of events, spaces allowed, no repeats needed.
    pub fn parse_list(s: &str) -> Result<Vec<Event>, UnknownEvent> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let e: Event = part.parse()?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event {0:?}: expected start, stop or delete")]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "start" => Ok(Event::Start),
            "stop" => Ok(Event::Stop),
            "delete" => Ok(Event::Delete),
            _ => Err(UnknownEvent(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(Event::parse_list("start, stop,start").unwrap(), vec![Event::Start, Event::Stop]);
        assert_eq!(Event::parse_list("").unwrap(), vec![]);
        assert!(Event::parse_list("start,deploy").is_err());
    }
}
