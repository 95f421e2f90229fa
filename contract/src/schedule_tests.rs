use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn schedule(s: &str) -> Schedule {
    Schedule::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// `state_at` as (running, since, next), instants in UTC.
fn state(s: &str, now: &str) -> (bool, Option<String>, Option<String>) {
    let st = schedule(s).state_at(ts(now));
    (st.running, st.since.map(|t| t.to_string()), st.next.map(|t| t.to_string()))
}

fn expect(running: bool, since: &str, next: &str) -> (bool, Option<String>, Option<String>) {
    (running, Some(ts(since).to_string()), Some(ts(next).to_string()))
}

fn error(s: &str) -> String {
    Schedule::parse(s).unwrap_err().to_string()
}

#[test]
fn the_bundled_database_is_built_in() {
    // The server's image has no /usr/share/zoneinfo: Jiff then reads its own copy.
    let db = jiff::tz::TimeZoneDatabase::bundled();
    for zone in ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"] {
        assert!(db.get(zone).is_ok(), "{zone}");
    }
}

#[test]
fn schedules_parse_and_print_the_canonical_way() {
    for (given, canonical) in [
        ("Mon-Fri 08:00-19:00 Europe/Paris", "Mon-Fri 08:00-19:00 Europe/Paris"),
        ("  mon-fri 8:00-19:00   europe/paris ", "Mon-Fri 08:00-19:00 Europe/Paris"),
        ("Mon-Fri 08:00-19:00; Sat 10:00-14:00 Europe/Paris", "Mon-Fri 08:00-19:00; Sat 10:00-14:00 Europe/Paris"),
        ("Mon-Fri 08:00-12:00,Mon-Fri 14:00-18:00 UTC", "Mon-Fri 08:00-12:00; Mon-Fri 14:00-18:00 UTC"),
        ("Fri-Mon 22:00-02:00 ; Wed 00:00-24:00 Asia/Kolkata", "Fri-Mon 22:00-02:00; Wed 00:00-24:00 Asia/Kolkata"),
    ] {
        let s = schedule(given);
        assert_eq!(s.to_string(), canonical, "{given}");
        assert_eq!(Schedule::parse(&s.to_string()).unwrap(), s, "{given}");
    }
    let s = schedule("Fri 22:00-02:00 UTC");
    assert_eq!(s.windows(), &[Window { first: Weekday::Friday, last: Weekday::Friday, start: 22 * 60, end: 120 }]);
    assert!(s.windows()[0].crosses_midnight());
    assert_eq!(s.zone_name(), "UTC");
}

#[test]
fn office_hours_in_paris() {
    let s = "Mon-Fri 08:00-19:00 Europe/Paris";
    // Tuesday 8 December 2026, 10:00 CET (UTC+1).
    assert_eq!(state(s, "2026-12-08T09:00:00Z"), expect(true, "2026-12-08T07:00:00Z", "2026-12-08T18:00:00Z"));
    // Tuesday 20:00: stopped until Wednesday 08:00.
    assert_eq!(state(s, "2026-12-08T19:00:00Z"), expect(false, "2026-12-08T18:00:00Z", "2026-12-09T07:00:00Z"));
    // Friday evening and the weekend: stopped until Monday.
    assert_eq!(state(s, "2026-12-11T19:00:00Z"), expect(false, "2026-12-11T18:00:00Z", "2026-12-14T07:00:00Z"));
    assert_eq!(state(s, "2026-12-13T12:00:00Z"), expect(false, "2026-12-11T18:00:00Z", "2026-12-14T07:00:00Z"));
    // Summer time (CEST, UTC+2): Monday 6 July 2026.
    assert_eq!(state(s, "2026-07-06T08:00:00Z"), expect(true, "2026-07-06T06:00:00Z", "2026-07-06T17:00:00Z"));
}

#[test]
fn an_edge_at_now_has_passed() {
    let s = "Mon-Fri 08:00-19:00 Europe/Paris";
    // Exactly at the start: running since now.
    assert_eq!(state(s, "2026-12-08T07:00:00Z"), expect(true, "2026-12-08T07:00:00Z", "2026-12-08T18:00:00Z"));
    // Exactly at the stop: stopped since now.
    assert_eq!(state(s, "2026-12-08T18:00:00Z"), expect(false, "2026-12-08T18:00:00Z", "2026-12-09T07:00:00Z"));
    // A nanosecond before each edge.
    assert_eq!(state(s, "2026-12-08T06:59:59.999999999Z"), expect(false, "2026-12-07T18:00:00Z", "2026-12-08T07:00:00Z"));
    assert_eq!(state(s, "2026-12-08T17:59:59.999999999Z"), expect(true, "2026-12-08T07:00:00Z", "2026-12-08T18:00:00Z"));
}

#[test]
fn half_hour_offsets() {
    // Asia/Kolkata is UTC+05:30, no daylight saving time.
    let s = "Mon-Fri 09:30-18:00 Asia/Kolkata";
    assert_eq!(state(s, "2026-12-08T05:00:00Z"), expect(true, "2026-12-08T04:00:00Z", "2026-12-08T12:30:00Z"));
    assert_eq!(state(s, "2026-12-11T13:00:00Z"), expect(false, "2026-12-11T12:30:00Z", "2026-12-14T04:00:00Z"));
}

#[test]
fn paris_spring_forward() {
    // Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00Z).
    // A window across the change lasts two hours: 01:00 CET (00:00Z) to 04:00 CEST (02:00Z).
    let s = "Sun 01:00-04:00 Europe/Paris";
    assert_eq!(state(s, "2026-03-29T00:30:00Z"), expect(true, "2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z"));
    // A start inside the gap (02:30 does not exist) happens when the gap ends, 03:00 CEST.
    let s = "Sun 02:30-05:00 Europe/Paris";
    assert_eq!(state(s, "2026-03-29T00:59:59Z"), expect(false, "2026-03-22T04:00:00Z", "2026-03-29T01:00:00Z"));
    assert_eq!(state(s, "2026-03-29T01:00:00Z"), expect(true, "2026-03-29T01:00:00Z", "2026-03-29T03:00:00Z"));
    // The week before, in winter time: 02:30 CET.
    assert_eq!(state(s, "2026-03-22T02:00:00Z"), expect(true, "2026-03-22T01:30:00Z", "2026-03-22T04:00:00Z"));
    // An end inside the gap too: the window 00:00-02:30 ends at 03:00 CEST.
    let s = "Sun 00:00-02:30 Europe/Paris";
    assert_eq!(state(s, "2026-03-29T00:30:00Z"), expect(true, "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z"));
    // A window wholly inside the gap does not run that day; it runs the next Sunday (CEST).
    let s = "Sun 02:00-02:30 Europe/Paris";
    assert_eq!(state(s, "2026-03-28T12:00:00Z"), expect(false, "2026-03-22T01:30:00Z", "2026-04-05T00:00:00Z"));
}

#[test]
fn paris_fall_back() {
    // Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00Z); 02:00-03:00 happens twice.
    // A window across the change lasts four hours: 01:00 CEST (23:00Z) to 04:00 CET (03:00Z).
    let s = "Sun 01:00-04:00 Europe/Paris";
    assert_eq!(state(s, "2026-10-25T01:30:00Z"), expect(true, "2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"));
    // A start in the repeated hour is its first occurrence: 02:30 CEST (00:30Z).
    let s = "Sun 02:30-05:00 Europe/Paris";
    assert_eq!(state(s, "2026-10-25T00:00:00Z"), expect(false, "2026-10-18T03:00:00Z", "2026-10-25T00:30:00Z"));
    assert_eq!(state(s, "2026-10-25T00:30:00Z"), expect(true, "2026-10-25T00:30:00Z", "2026-10-25T04:00:00Z"));
    // So is an end: 00:00-02:30 ends at the first 02:30 (CEST, 00:30Z).
    let s = "Sun 00:00-02:30 Europe/Paris";
    assert_eq!(state(s, "2026-10-25T00:00:00Z"), expect(true, "2026-10-24T22:00:00Z", "2026-10-25T00:30:00Z"));
}

#[test]
fn new_york_daylight_saving_time() {
    // Sunday 8 March 2026: 02:00 EST becomes 03:00 EDT (07:00Z).
    let s = "Sun 01:00-04:00 America/New_York";
    assert_eq!(state(s, "2026-03-08T06:30:00Z"), expect(true, "2026-03-08T06:00:00Z", "2026-03-08T08:00:00Z"));
    // 02:15 does not exist: the window starts at 03:00 EDT and ends at 03:30 EDT.
    let s = "Sun 02:15-03:30 America/New_York";
    assert_eq!(state(s, "2026-03-08T06:59:00Z"), expect(false, "2026-03-01T08:30:00Z", "2026-03-08T07:00:00Z"));
    assert_eq!(state(s, "2026-03-08T07:10:00Z"), expect(true, "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"));
    // Sunday 1 November 2026: 02:00 EDT becomes 01:00 EST (06:00Z); 01:00-02:00 happens twice.
    let s = "Sun 00:30-03:00 America/New_York";
    assert_eq!(state(s, "2026-11-01T06:30:00Z"), expect(true, "2026-11-01T04:30:00Z", "2026-11-01T08:00:00Z"));
    // A start in the repeated hour is its first occurrence (EDT).
    let s = "Sun 01:30-02:00 America/New_York";
    assert_eq!(state(s, "2026-11-01T05:00:00Z"), expect(false, "2026-10-25T06:00:00Z", "2026-11-01T05:30:00Z"));
    assert_eq!(state(s, "2026-11-01T06:45:00Z"), expect(true, "2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z"));
    // Office hours on either side of both changes keep their local hours.
    let s = "Mon-Fri 09:00-17:00 America/New_York";
    assert_eq!(state(s, "2026-03-06T15:00:00Z"), expect(true, "2026-03-06T14:00:00Z", "2026-03-06T22:00:00Z"));
    assert_eq!(state(s, "2026-03-09T15:00:00Z"), expect(true, "2026-03-09T13:00:00Z", "2026-03-09T21:00:00Z"));
    assert_eq!(state(s, "2026-11-02T15:00:00Z"), expect(true, "2026-11-02T14:00:00Z", "2026-11-02T22:00:00Z"));
    // Stopped over the spring-forward weekend: from Friday 17:00 EST to Monday 09:00 EDT.
    assert_eq!(state(s, "2026-03-08T12:00:00Z"), expect(false, "2026-03-06T22:00:00Z", "2026-03-09T13:00:00Z"));
}

#[test]
fn windows_across_midnight() {
    let s = "Fri 22:00-02:00 UTC";
    assert_eq!(state(s, "2026-12-11T23:00:00Z"), expect(true, "2026-12-11T22:00:00Z", "2026-12-12T02:00:00Z"));
    assert_eq!(state(s, "2026-12-12T01:00:00Z"), expect(true, "2026-12-11T22:00:00Z", "2026-12-12T02:00:00Z"));
    assert_eq!(state(s, "2026-12-12T03:00:00Z"), expect(false, "2026-12-12T02:00:00Z", "2026-12-18T22:00:00Z"));
    // Across the week's end: Sunday night into Monday.
    let s = "Sun 22:00-02:00 Europe/Paris";
    assert_eq!(state(s, "2026-12-14T00:30:00Z"), expect(true, "2026-12-13T21:00:00Z", "2026-12-14T01:00:00Z"));
    assert_eq!(state(s, "2026-12-10T00:00:00Z"), expect(false, "2026-12-07T01:00:00Z", "2026-12-13T21:00:00Z"));
    // Every night: one period a night, Monday's ends on Tuesday.
    let s = "Mon-Sun 20:00-08:00 UTC";
    assert_eq!(state(s, "2026-12-09T03:00:00Z"), expect(true, "2026-12-08T20:00:00Z", "2026-12-09T08:00:00Z"));
    assert_eq!(state(s, "2026-12-09T12:00:00Z"), expect(false, "2026-12-09T08:00:00Z", "2026-12-09T20:00:00Z"));
}

#[test]
fn day_ranges_wrap_over_the_week_end() {
    let s = "Fri-Mon 10:00-12:00 UTC";
    // Tuesday: the next run is Friday.
    assert_eq!(state(s, "2026-12-08T11:00:00Z"), expect(false, "2026-12-07T12:00:00Z", "2026-12-11T10:00:00Z"));
    // Sunday and Monday run.
    assert_eq!(state(s, "2026-12-13T11:00:00Z"), expect(true, "2026-12-13T10:00:00Z", "2026-12-13T12:00:00Z"));
    assert_eq!(state(s, "2026-12-14T11:00:00Z"), expect(true, "2026-12-14T10:00:00Z", "2026-12-14T12:00:00Z"));
}

#[test]
fn several_windows() {
    let s = "Mon-Fri 08:00-12:00; Mon-Fri 14:00-18:00; Sat 10:00-14:00 UTC";
    assert_eq!(state(s, "2026-12-08T13:00:00Z"), expect(false, "2026-12-08T12:00:00Z", "2026-12-08T14:00:00Z"));
    assert_eq!(state(s, "2026-12-08T15:00:00Z"), expect(true, "2026-12-08T14:00:00Z", "2026-12-08T18:00:00Z"));
    assert_eq!(state(s, "2026-12-11T19:00:00Z"), expect(false, "2026-12-11T18:00:00Z", "2026-12-12T10:00:00Z"));
    assert_eq!(state(s, "2026-12-12T15:00:00Z"), expect(false, "2026-12-12T14:00:00Z", "2026-12-14T08:00:00Z"));
}

#[test]
fn touching_and_overlapping_windows_merge() {
    // Touching: one period from 08:00 to 18:00, no stop at 12:00.
    for s in
        ["Mon 08:00-12:00; Mon 12:00-18:00 UTC", "Mon 12:00-18:00, Mon 08:00-12:00 UTC", "Mon 08:00-13:00; Mon 12:00-18:00 UTC"]
    {
        assert_eq!(state(s, "2026-12-14T12:00:00Z"), expect(true, "2026-12-14T08:00:00Z", "2026-12-14T18:00:00Z"), "{s}");
        assert_eq!(state(s, "2026-12-14T09:00:00Z"), expect(true, "2026-12-14T08:00:00Z", "2026-12-14T18:00:00Z"), "{s}");
    }
    // A night window that touches the next day's: Friday 18:00 to Monday 08:00.
    let s = "Fri 18:00-24:00; Sat-Sun 00:00-24:00; Mon 00:00-08:00 UTC";
    assert_eq!(state(s, "2026-12-13T12:00:00Z"), expect(true, "2026-12-11T18:00:00Z", "2026-12-14T08:00:00Z"));
    // Windows whose weekly gap falls inside the spring-forward hour run on through it that week.
    let s = "Sat 00:00-24:00; Sun 00:00-02:00; Sun 03:00-24:00 Europe/Paris";
    assert_eq!(state(s, "2026-03-29T00:30:00Z"), expect(true, "2026-03-27T23:00:00Z", "2026-03-29T22:00:00Z"));
    assert_eq!(state(s, "2026-03-22T01:30:00Z"), expect(false, "2026-03-22T01:00:00Z", "2026-03-22T02:00:00Z"));
}

#[test]
fn whole_days_and_whole_weeks() {
    let s = "Mon-Fri 00:00-24:00 Europe/Paris";
    assert_eq!(state(s, "2026-12-09T12:00:00Z"), expect(true, "2026-12-06T23:00:00Z", "2026-12-11T23:00:00Z"));
    assert_eq!(state(s, "2026-12-12T12:00:00Z"), expect(false, "2026-12-11T23:00:00Z", "2026-12-13T23:00:00Z"));
    // All week long: always running, no edge.
    for s in [
        "Mon-Sun 00:00-24:00 UTC",
        "Mon-Fri 00:00-24:00; Sat-Sun 00:00-24:00 Europe/Paris",
        "Mon-Sun 12:00-12:01; Mon-Sun 12:01-12:00 UTC",
    ] {
        let st = schedule(s).state_at(ts("2026-03-29T01:30:00Z"));
        assert_eq!(st, ScheduleState { running: true, since: None, next: None }, "{s}");
    }
    // One minute short of the week: a stop and a start every week.
    let s = "Mon-Sat 00:00-24:00; Sun 00:00-23:59 UTC";
    assert_eq!(state(s, "2026-12-13T23:59:30Z"), expect(false, "2026-12-13T23:59:00Z", "2026-12-14T00:00:00Z"));
    assert_eq!(state(s, "2026-12-10T12:00:00Z"), expect(true, "2026-12-07T00:00:00Z", "2026-12-13T23:59:00Z"));
}

#[test]
fn errors_name_the_part_the_rule_and_a_way_to_write_it() {
    assert_eq!(
        error("Mon-Fry 08:00-19:00 Europe/Paris"),
        r#"schedule "Mon-Fry 08:00-19:00 Europe/Paris": "Fry" is not a day: write Mon, Tue, Wed, Thu, Fri, Sat or Sun"#
    );
    for (bad, part) in [
        ("", "empty: write the windows then the time zone"),
        ("   ", "empty"),
        ("Mon-Fri 08:00-19:00", "no time zone at the end: end with an IANA time zone such as Europe/Paris"),
        ("Mon-Fri 08:00-19:00 Europe/Pari", r#""Europe/Pari" is not a time zone of the IANA database"#),
        ("Mon-Fri 08:00-19:00 CEST", r#""CEST" is not a time zone"#),
        ("Europe/Paris", "no window before the time zone: write DAYS HH:MM-HH:MM"),
        ("Mon-Fri Europe/Paris", r#""Mon-Fri" has no hours"#),
        ("Mon,Wed 08:00-10:00 UTC", "days apart take a window each: Mon 08:00-10:00; Wed 08:00-10:00"),
        ("08:00-19:00 UTC", r#""08:00-19:00" has no days"#),
        ("Monday 08:00-19:00 UTC", r#""Monday" is not a day"#),
        ("Mon- 08:00-19:00 UTC", r#""Mon-" is not a day or a range of days: write Mon, or a range such as Mon-Fri"#),
        ("Mon - Fri 08:00-19:00 UTC", r#""Mon - Fri 08:00-19:00" is not one window"#),
        ("Mon 08:00 - 19:00 UTC", "is not one window"),
        ("Mon 08:00-10:00 Tue 09:00-11:00 UTC", "separate windows with ';'"),
        ("Mon 08:00-10:00; UTC", "an empty window"),
        ("; Mon 08:00-10:00 UTC", "an empty window"),
        ("Mon 08:00-10:00;; Tue 08:00-10:00 UTC", "an empty window"),
        ("Mon 0800-1900 UTC", r#""0800" is not a time of day: write HH:MM, from 00:00 to 23:59 (24:00 only as an end)"#),
        ("Mon 08:00 UTC", r#""08:00" is not a time range: write HH:MM-HH:MM"#),
        ("Mon 25:00-26:00 UTC", r#""25:00" is not a time of day"#),
        ("Mon 08:60-09:00 UTC", r#""08:60" is not a time of day"#),
        ("Mon 08:0-09:00 UTC", r#""08:0" is not a time of day"#),
        ("Mon 08:00-24:30 UTC", r#""24:30" is not a time of day"#),
        ("Mon 24:00-02:00 UTC", "starts at 24:00: start the window at 00:00 of the next day"),
        ("Mon 08:00-08:00 UTC", r#""08:00-08:00" is empty: a window ends after it starts"#),
        ("Mon 00:00-00:00 UTC", "for whole days write 00:00-24:00"),
        ("Mon 08:00-19:00 Mon", "no time zone at the end"),
    ] {
        let e = error(bad);
        assert!(e.starts_with(&format!("schedule {bad:?}: ")), "{bad}: {e}");
        assert!(e.contains(part), "{bad}: {e}");
    }
}

#[test]
fn ttls() {
    for (given, secs) in [
        ("72h", 72 * 3600),
        ("90m", 90 * 60),
        ("2d", 2 * 86_400),
        ("1h30m", 5400),
        ("1d 12h", 36 * 3600),
        (" 45s ", 45),
        ("1D", 86_400),
        ("3650d", 3650 * 86_400),
    ] {
        assert_eq!(parse_ttl(given), Ok(SignedDuration::from_secs(secs)), "{given}");
    }
    for (bad, part) in [
        ("0h", "a ttl of zero would delete the environment as soon as it starts"),
        ("0d0h", "zero"),
        ("-1h", "a ttl counts forward from the last start or redeploy"),
        ("72", r#""72" has no unit: write 72h (hours), 72m (minutes) or 72d (days)"#),
        ("1h30", r#""30" has no unit"#),
        ("3w", "is not a duration: write a duration such as 72h, 90m, 2d or 1h30m"),
        ("PT72H", "is not a duration"),
        ("30m1h", "largest first"),
        ("1h1h", "is not a duration"),
        ("h", "is not a duration"),
        ("", "empty"),
        ("3651d", "more than 10 years (3650d): for an environment that does not expire, remove the ttl"),
        ("99999999999999999999999h", "more than 10 years"),
        ("9999999999999999d", "more than 10 years"),
    ] {
        let e = parse_ttl(bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("ttl {bad:?}: ")), "{bad}: {e}");
        assert!(e.contains(part), "{bad}: {e}");
    }
}

#[test]
fn expiry_times_need_an_offset() {
    assert_eq!(parse_expires_at("2026-12-24T18:00:00+01:00"), Ok(ts("2026-12-24T17:00:00Z")));
    assert_eq!(parse_expires_at(" 2026-12-24T18:00:00Z "), Ok(ts("2026-12-24T18:00:00Z")));
    assert_eq!(parse_expires_at("2026-12-24T18:00:00.5-05:00"), Ok(ts("2026-12-24T23:00:00.5Z")));
    for (bad, part) in [
        ("2026-12-24T18:00:00", "no UTC offset: a time alone means different instants on different machines"),
        ("2026-12-24", "no UTC offset"),
        ("tomorrow", "not an RFC 3339 time: write e.g. 2026-12-24T18:00:00Z"),
        ("2026-13-24T18:00:00Z", "not an RFC 3339 time"),
        ("", "not an RFC 3339 time"),
    ] {
        let e = parse_expires_at(bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("expires-at {bad:?}: ")), "{bad}: {e}");
        assert!(e.contains(part), "{bad}: {e}");
    }
}

#[test]
fn the_earlier_expiry_wins() {
    let start = ts("2026-12-08T10:00:00Z");
    let three_days = Some(SignedDuration::from_hours(72));
    assert_eq!(expiry_at(None, None, Some(start)), None);
    assert_eq!(expiry_at(None, three_days, Some(start)), Some(ts("2026-12-11T10:00:00Z")));
    // No ttl counts before a first start.
    assert_eq!(expiry_at(None, three_days, None), None);
    assert_eq!(expiry_at(Some(ts("2026-12-24T00:00:00Z")), three_days, None), Some(ts("2026-12-24T00:00:00Z")));
    assert_eq!(expiry_at(Some(ts("2026-12-24T00:00:00Z")), three_days, Some(start)), Some(ts("2026-12-11T10:00:00Z")));
    assert_eq!(expiry_at(Some(ts("2026-12-09T00:00:00Z")), three_days, Some(start)), Some(ts("2026-12-09T00:00:00Z")));
    // A redeploy restarts the count.
    assert_eq!(expiry_at(None, three_days, Some(ts("2026-12-10T10:00:00Z"))), Some(ts("2026-12-13T10:00:00Z")));
    // Past the last instant: no expiry rather than an overflow.
    assert_eq!(expiry_at(None, Some(TTL_MAX), Some(Timestamp::MAX)), None);

    let e = Expiry::parse(Some("2026-12-24T00:00:00Z"), Some("72h")).unwrap();
    assert_eq!(e, Expiry { expires_at: Some(ts("2026-12-24T00:00:00Z")), ttl: three_days });
    assert_eq!(e.at(Some(start)), Some(ts("2026-12-11T10:00:00Z")));
    assert_eq!(Expiry::parse(None, Some(" ")), Ok(Expiry::default()));
    assert!(Expiry::parse(Some("soon"), None).unwrap_err().to_string().starts_with("expires-at \"soon\""));
    assert!(Expiry::parse(None, Some("0m")).unwrap_err().to_string().starts_with("ttl \"0m\""));
}

#[test]
fn keep_is_true_or_false() {
    for (v, keep) in [(None, false), (Some(""), false), (Some("false"), false), (Some("true"), true), (Some(" TRUE "), true)] {
        assert_eq!(parse_keep(v), Ok(keep), "{v:?}");
    }
    for bad in ["yes", "1", "on", "forever"] {
        let e = parse_keep(Some(bad)).unwrap_err().to_string();
        assert_eq!(e, format!("keep {bad:?}: write \"true\" (suspends the schedule, the ttl and expires-at) or \"false\""));
    }
}
