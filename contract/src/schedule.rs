//! When an environment runs and when it expires: the namespace annotations
//! `schedule`, `expires-at`, `ttl` and `keep` read into values, and the pure
//! functions that turn them into wanted times ([`Schedule::state_at`],
//! [`expiry_at`]). Admission refuses what these parsers refuse; the controller
//! and the plugin compute times with these functions only, so they never
//! disagree about when an environment stops, starts or expires.
//!
//! # The `schedule` grammar
//!
//! ```text
//! schedule = window *( sep window ) SP zone
//! sep      = ";" / ","              (spaces around it are allowed)
//! window   = days SP time "-" time
//! days     = day / day "-" day       (a range; Fri-Mon wraps over the week's end)
//! day      = Mon / Tue / Wed / Thu / Fri / Sat / Sun   (any case)
//! time     = H:MM / HH:MM            (00:00 to 23:59; 24:00 only as an end)
//! zone     = an IANA time zone name  (Europe/Paris, America/New_York, UTC)
//! ```
//!
//! For example `Mon-Fri 08:00-19:00 Europe/Paris` or
//! `Mon-Fri 08:00-19:00; Sat 10:00-14:00 Europe/Paris`. `;` and `,` both
//! separate windows, so a window's days are one day or one range, never a list:
//! days apart take a window each (`Mon 08:00-10:00; Wed 08:00-10:00`). The
//! time zone comes once, at the end, and applies to every window.
//!
//! A window runs on each of its days from its start to its end, local time. An
//! end before the start runs past midnight into the next day
//! (`Fri 22:00-02:00` ends Saturday 02:00; `Sun 22:00-02:00` ends Monday);
//! `00:00-24:00` is the whole day. A window that starts and ends at the same
//! time is refused. Windows that overlap or touch (one ends when the next
//! starts) make one running period: no stop and start between them.
//!
//! Daylight saving time: a start or an end at a local time that does not exist
//! that day (inside the hour skipped when clocks go forward) happens at the
//! first instant after the gap, when clocks show the gap's end (`02:30` on the
//! day Paris goes from 02:00 to 03:00 is 03:00 CEST); a window that lies wholly
//! inside the gap does not run that day. A local time that happens twice (the
//! hour repeated when clocks go back) is its first occurrence, for starts and
//! ends alike. A window's length in hours therefore changes on those days, as
//! a wall clock's does.
//!
//! # `ttl`, `expires-at`, `keep`
//!
//! `ttl` is a duration, counted from the environment's last start or redeploy:
//! one or more `<number><unit>` parts, units `d` (24 hours), `h`, `m`, `s`, largest
//! first, each once (`72h`, `90m`, `2d`, `1h30m`, `1d 12h`); more than zero and
//! at most 10 years (3650d). `expires-at` is an RFC 3339 time with its UTC offset
//! (`2026-12-24T18:00:00Z`, `2026-12-24T18:00:00+01:00`); a time without an
//! offset is refused, since it would mean different instants on different
//! machines. With both, the earlier wins ([`expiry_at`]). `keep` is `"true"` or
//! `"false"` (any case); `"true"` suspends the schedule and the expiry. An
//! absent or empty value is no setting, as for the contract's other annotations.

use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A wrong `schedule`, `ttl`, `expires-at` or `keep` value. Its text names the
/// setting, the value, the part that is wrong, the rule and a way to write it:
/// `schedule "Mon-Fry 08:00-19:00 Europe/Paris": "Fry" is not a day: write Mon, Tue, Wed, Thu, Fri, Sat or Sun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// `schedule`, `ttl`, `expires-at` or `keep`.
    pub setting: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong and how to write it.
    pub reason: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.setting, self.value, self.reason)
    }
}

impl std::error::Error for ScheduleError {}

/// Minutes in a day: a window's end may be this (`24:00`).
const DAY_MINUTES: u16 = 24 * 60;
/// The grammar, shown in hints.
const WINDOW_HINT: &str = "write DAYS HH:MM-HH:MM, e.g. Mon-Fri 08:00-19:00";
const ZONE_HINT: &str = "end with an IANA time zone such as Europe/Paris, America/New_York or UTC";
const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

/// One window of a schedule: days `first` to `last` (wrapping over Sunday),
/// from `start` to `end`, in minutes after midnight, local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first: Weekday,
    pub last: Weekday,
    /// 0 to 1439.
    pub start: u16,
    /// 0 to 1440; not equal to `start`; before `start`: the window ends the next day.
    pub end: u16,
}

impl Window {
    /// Whether the window starts on `day`.
    pub fn starts_on(&self, day: Weekday) -> bool {
        let (first, last, d) = (monday0(self.first), monday0(self.last), monday0(day));
        if first <= last { (first..=last).contains(&d) } else { d >= first || d <= last }
    }

    /// Whether the window runs past midnight into the next day.
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}", day_name(self.first))?;
        if self.last != self.first {
            write!(f, "-{}", day_name(self.last))?;
        }
        write!(f, " {}-{}", hm(self.start), hm(self.end))
    }
}

/// A parsed `schedule`: when the environment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    windows: Vec<Window>,
    zone: TimeZone,
    zone_name: String,
}

/// Where an environment stands in its schedule at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleState {
    /// Whether the instant is inside a running period.
    pub running: bool,
    /// The last edge (start or stop) at or before the instant; `None` when
    /// the schedule runs all week long (it has no edges).
    pub since: Option<Timestamp>,
    /// The next edge after the instant: a stop when `running`, else a start;
    /// `None` when the schedule runs all week long.
    pub next: Option<Timestamp>,
}

impl Schedule {
    /// Reads a `schedule` value (grammar in the module's documentation). The
    /// time zone is looked up in Jiff's database: the system's
    /// `/usr/share/zoneinfo` when there is one, else the copy built into the
    /// binary (feature `tzdb-bundle-always`), so an image without zoneinfo knows
    /// every zone too.
    pub fn parse(value: &str) -> Result<Schedule, ScheduleError> {
        let err = |reason: String| ScheduleError { setting: "schedule", value: value.to_string(), reason };
        let s = value.trim();
        if s.is_empty() {
            return Err(err("empty: write the windows then the time zone, e.g. Mon-Fri 08:00-19:00 Europe/Paris".to_string()));
        }
        let Some((body, zone)) = s.rsplit_once(char::is_whitespace) else {
            return Err(err(if s.contains('/') || s.eq_ignore_ascii_case("UTC") {
                format!("no window before the time zone: {WINDOW_HINT} Europe/Paris")
            } else {
                format!("no time zone at the end: {ZONE_HINT}")
            }));
        };
        if zone.contains(':') || parse_days(zone).is_ok() {
            return Err(err(format!("no time zone at the end: {ZONE_HINT}")));
        }
        let tz = jiff::tz::db().get(zone).map_err(|_| {
            err(format!(
                "{zone:?} is not a time zone of the IANA database: write a name such as Europe/Paris, America/New_York, \
                 Asia/Kolkata or UTC"
            ))
        })?;
        let zone_name = tz.iana_name().unwrap_or(zone).to_string();
        let mut windows = Vec::new();
        for part in body.split([';', ',']) {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words[..] {
                [] => {
                    return Err(err(
                        "an empty window (a separator at the start or the end, or two in a row): separate windows with \
                         one ';' or ','"
                            .to_string(),
                    ));
                }
                [days, times] => {
                    let (first, last) = parse_days(days).map_err(err)?;
                    let (start, end) = parse_times(times).map_err(err)?;
                    windows.push(Window { first, last, start, end });
                }
                [one] => {
                    return Err(err(if parse_days(one).is_ok() {
                        format!(
                            "{one:?} has no hours: {WINDOW_HINT}; a window's days are one day or a range, so days apart \
                             take a window each: Mon 08:00-10:00; Wed 08:00-10:00"
                        )
                    } else if parse_times(one).is_ok() {
                        format!("{one:?} has no days: {WINDOW_HINT}")
                    } else {
                        parse_days(one).unwrap_err()
                    }));
                }
                _ => {
                    return Err(err(format!(
                        "{:?} is not one window: {WINDOW_HINT}, with no spaces inside the days or the hours, and \
                         separate windows with ';'",
                        part.trim()
                    )));
                }
            }
        }
        Ok(Schedule { windows, zone: tz, zone_name })
    }

    /// The windows, in the order written.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The time zone's IANA name (as the database spells it).
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The time zone.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Where the schedule stands at `now`: running or not, since when and
    /// until when. An edge exactly at `now` counts as passed: at a start the
    /// environment is running (`since == now`), at a stop it is not, and
    /// `next` is always after `now`. Pure: the same schedule and instant give
    /// the same answer on every machine (with the same time zone data).
    pub fn state_at(&self, now: Timestamp) -> ScheduleState {
        if self.runs_all_week() {
            return ScheduleState { running: true, since: None, next: None };
        }
        // Every running period that is not the whole week is shorter than two
        // weeks (a week, or two when a weekly gap falls inside a
        // spring-forward hour), so the periods of the local days from 16 days
        // before to 16 days after hold the edges around `now`.
        let today = now.to_zoned(self.zone.clone()).date();
        let mut periods: Vec<(Timestamp, Timestamp)> = Vec::new();
        for offset in -16i32..=16 {
            let Ok(date) = today.checked_add(jiff::Span::new().days(offset)) else { continue };
            for w in self.windows.iter().filter(|w| w.starts_on(date.weekday())) {
                let end_date = if w.crosses_midnight() || w.end == DAY_MINUTES { date.tomorrow().ok() } else { Some(date) };
                let (Some(start), Some(end)) = (
                    self.instant(date, w.start),
                    end_date.and_then(|d| self.instant(d, if w.end == DAY_MINUTES { 0 } else { w.end })),
                ) else {
                    continue;
                };
                if start < end {
                    periods.push((start, end));
                }
            }
        }
        periods.sort();
        let mut merged: Vec<(Timestamp, Timestamp)> = Vec::new();
        for (start, end) in periods {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let running = merged.iter().any(|&(start, end)| start <= now && now < end);
        let edges = merged.iter().flat_map(|&(start, end)| [start, end]);
        let since = edges.clone().filter(|&e| e <= now).max();
        let next = edges.filter(|&e| e > now).min();
        ScheduleState { running, since, next }
    }

    /// Whether the windows cover every minute of the week (local time).
    fn runs_all_week(&self) -> bool {
        const WEEK: usize = 7 * DAY_MINUTES as usize;
        let mut covered = vec![false; WEEK];
        for w in &self.windows {
            for (_, day) in DAYS.iter().filter(|(_, d)| w.starts_on(*d)) {
                let from = monday0(*day) * DAY_MINUTES as usize + w.start as usize;
                let len = if w.crosses_midnight() { DAY_MINUTES - w.start + w.end } else { w.end - w.start };
                for m in from..from + len as usize {
                    covered[m % WEEK] = true;
                }
            }
        }
        covered.iter().all(|c| *c)
    }

    /// The instant of `minutes` after midnight on `date`, local time: in a
    /// gap, the first instant after it; in a fold, the first occurrence.
    fn instant(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let time = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
        let dt = DateTime::from_parts(date, time);
        match self.zone.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // Read with the offset after the gap, the local time is an
                // instant before the transition; the transition is the gap's end.
                let inside = after.to_timestamp(dt).ok()?;
                self.zone.following(inside).next().map(|t| t.timestamp())
            }
        }
    }
}

impl fmt::Display for Schedule {
    /// The schedule written the canonical way: `Mon-Fri 08:00-19:00; Sat 10:00-14:00 Europe/Paris`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.windows.iter().enumerate() {
            write!(f, "{}{w}", if i == 0 { "" } else { "; " })?;
        }
        write!(f, " {}", self.zone_name)
    }
}

fn monday0(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

fn day_name(day: Weekday) -> &'static str {
    DAYS[monday0(day)].0
}

/// `Mon` or `Mon-Fri`; the error is the reason only.
fn parse_days(word: &str) -> Result<(Weekday, Weekday), String> {
    let day = |d: &str| {
        DAYS.iter().find(|(name, _)| name.eq_ignore_ascii_case(d)).map(|(_, day)| *day).ok_or_else(|| {
            if d.is_empty() {
                format!("{word:?} is not a day or a range of days: write Mon, or a range such as Mon-Fri")
            } else {
                format!("{d:?} is not a day: write Mon, Tue, Wed, Thu, Fri, Sat or Sun")
            }
        })
    };
    match word.split_once('-') {
        Some((a, b)) => Ok((day(a)?, day(b)?)),
        None => day(word).map(|d| (d, d)),
    }
}

/// `HH:MM-HH:MM` in minutes; the error is the reason only.
fn parse_times(word: &str) -> Result<(u16, u16), String> {
    let Some((a, b)) = word.split_once('-') else {
        return Err(format!("{word:?} is not a time range: write HH:MM-HH:MM, e.g. 08:00-19:00"));
    };
    let time = |t: &str| -> Result<u16, String> {
        let bad = || format!("{t:?} is not a time of day: write HH:MM, from 00:00 to 23:59 (24:00 only as an end)");
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        let digits = |s: &str, max_len: usize| !s.is_empty() && s.len() <= max_len && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if (h < 24 && m < 60) || (h == 24 && m == 0) { Ok(h * 60 + m) } else { Err(bad()) }
    };
    let (start, end) = (time(a)?, time(b)?);
    if start == DAY_MINUTES {
        return Err(format!("{word:?} starts at 24:00: start the window at 00:00 of the next day"));
    }
    if start == end {
        return Err(format!(
            "{word:?} is empty: a window ends after it starts (an end before the start runs past midnight); for \
             whole days write 00:00-24:00"
        ));
    }
    Ok((start, end))
}

/// The longest `ttl`: 10 years of 365 days.
pub const TTL_MAX: SignedDuration = SignedDuration::from_secs(3650 * 86_400);

/// Reads a `ttl` value: `72h`, `90m`, `2d`, `1h30m`, `1d 12h` (grammar in the
/// module's documentation); more than zero, at most [`TTL_MAX`].
pub fn parse_ttl(value: &str) -> Result<SignedDuration, ScheduleError> {
    let err = |reason: String| ScheduleError { setting: "ttl", value: value.to_string(), reason };
    const HINT: &str = "write a duration such as 72h, 90m, 2d or 1h30m (units d, h, m, s, largest first)";
    let s = value.trim();
    if s.starts_with('-') {
        return Err(err(format!("a ttl counts forward from the last start or redeploy: {HINT}")));
    }
    let units = [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)];
    let mut rest = s.trim_start_matches('+');
    let mut next_unit = 0;
    let mut secs: u64 = 0;
    if rest.is_empty() {
        return Err(err(format!("empty: {HINT}")));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let Some(unit) = tail.chars().next() else {
            return Err(err(if digits == s.len() {
                format!("{s:?} has no unit: write {s}h (hours), {s}m (minutes) or {s}d (days)")
            } else {
                format!("{number:?} has no unit: {HINT}")
            }));
        };
        let Some(i) = units.iter().position(|(u, _)| u.eq_ignore_ascii_case(&unit)) else {
            return Err(err(format!("{s:?} is not a duration: {HINT}")));
        };
        if digits == 0 || i < next_unit {
            return Err(err(format!("{s:?} is not a duration: {HINT}")));
        }
        let n: u64 = number.parse().map_err(|_| err(format!("more than 10 years (3650d): {HINT}")))?;
        secs = n.checked_mul(units[i].1).and_then(|x| secs.checked_add(x)).unwrap_or(u64::MAX);
        next_unit = i + 1;
        rest = tail[unit.len_utf8()..].trim_start();
    }
    if secs == 0 {
        return Err(err(format!(
            "a ttl of zero would delete the environment as soon as it starts: {HINT}; to delete it now, label it \
             lifecycle-jobs.dev/state=deleted"
        )));
    }
    if secs > TTL_MAX.as_secs() as u64 {
        return Err(err("more than 10 years (3650d): for an environment that does not expire, remove the ttl or set \
             lifecycle-jobs.dev/keep: \"true\""
            .to_string()));
    }
    Ok(SignedDuration::from_secs(secs as i64))
}

/// Reads an `expires-at` value: an RFC 3339 time with its UTC offset.
pub fn parse_expires_at(value: &str) -> Result<Timestamp, ScheduleError> {
    let err = |reason: &str| ScheduleError { setting: "expires-at", value: value.to_string(), reason: reason.to_string() };
    let s = value.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if s.parse::<DateTime>().is_ok() || s.parse::<Date>().is_ok() {
        return Err(err("no UTC offset: a time alone means different instants on different machines; write the date, the time \
             and its offset, e.g. 2026-12-24T18:00:00Z or 2026-12-24T18:00:00+01:00"));
    }
    Err(err("not an RFC 3339 time: write e.g. 2026-12-24T18:00:00Z or 2026-12-24T18:00:00+01:00"))
}

/// Reads a `keep` value: `"true"` or `"false"` (any case, spaces around
/// ignored); absent or empty is `false`.
pub fn parse_keep(value: Option<&str>) -> Result<bool, ScheduleError> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else {
        Err(ScheduleError {
            setting: "keep",
            value: value.unwrap_or_default().to_string(),
            reason: "write \"true\" (suspends the schedule, the ttl and expires-at) or \"false\"".to_string(),
        })
    }
}

/// An environment's expiry settings: `expires-at` and `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expiry {
    pub expires_at: Option<Timestamp>,
    pub ttl: Option<SignedDuration>,
}

impl Expiry {
    /// Reads the `expires-at` and `ttl` annotations; absent or empty values are unset.
    pub fn parse(expires_at: Option<&str>, ttl: Option<&str>) -> Result<Expiry, ScheduleError> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.filter(|v| !v.trim().is_empty())
        }
        Ok(Expiry { expires_at: set(expires_at).map(parse_expires_at).transpose()?, ttl: set(ttl).map(parse_ttl).transpose()? })
    }

    /// When the environment expires; see [`expiry_at`].
    pub fn at(&self, last_start: Option<Timestamp>) -> Option<Timestamp> {
        expiry_at(self.expires_at, self.ttl, last_start)
    }
}

/// When an environment expires: `expires_at`, or `last_start + ttl`
/// (`last_start`: the last start or redeploy), the earlier of the two when
/// both are set; `None` when neither applies (no ttl counts before a first
/// start, nor past the last representable instant).
pub fn expiry_at(expires_at: Option<Timestamp>, ttl: Option<SignedDuration>, last_start: Option<Timestamp>) -> Option<Timestamp> {
    let by_ttl = ttl.zip(last_start).and_then(|(ttl, start)| start.checked_add(ttl).ok());
    match (expires_at, by_ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
