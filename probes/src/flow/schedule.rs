//! The `schedule` key, checked when a flow is loaded so `validate` refuses a
//! schedule the agent could not keep: an interval outside 1 s … 31 days, or a
//! cron expression with a wrong field or no fire time in the next five years.
//! The agent parses the accepted text again to put it on its scheduler; both
//! use croner with seconds first, so they agree on what a cron field means.

use std::time::Duration;

use croner::parser::{CronParser, Seconds};

use super::echo::{bounded, quote};

/// Shorter, and a browser flow would overlap itself on a busy machine.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longer, and a monitor says nothing for a month; use cron for rare runs.
pub const MAX_INTERVAL: Duration = Duration::from_secs(31 * 24 * 3600);
/// A cron expression must fire within this many years of now.
pub const CRON_HORIZON_YEARS: i64 = 5;

const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT (0 and 7 are Sunday)"),
];

/// Why `text` is not a schedule the agent can keep, or `Ok`.
pub fn check(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    match fields.len() {
        0 => Err(
            "is empty; give an interval like \"5m\" or a cron expression like \"*/5 * * * *\""
                .into(),
        ),
        1 => interval(trimmed).map(|_| ()),
        5 | 6 => cron(trimmed, &fields),
        n => Err(format!(
            "{} has {n} fields; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first)",
            quote(trimmed)
        )),
    }
}

/// An interval within [`MIN_INTERVAL`] … [`MAX_INTERVAL`].
pub fn interval(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| {
        format!(
            "{} is not an interval like \"5m\" or a cron expression: {}",
            quote(text),
            bounded(&e.to_string())
        )
    })?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&every) {
        return Err(format!(
            "{} is outside 1s … 31days; an interval must be at least 1s and at most 31 days (use a cron expression for rarer runs)",
            quote(text)
        ));
    }
    Ok(every)
}

fn cron(text: &str, fields: &[&str]) -> Result<(), String> {
    // Five fields are crontab's: the scheduler's seconds come first.
    let six: Vec<&str> = if fields.len() == 5 {
        std::iter::once("0").chain(fields.iter().copied()).collect()
    } else {
        fields.to_vec()
    };
    let parser = CronParser::builder().seconds(Seconds::Required).build();
    // Judge one field at a time (the others `*`) so the error names it.
    let skip = usize::from(fields.len() == 5);
    for (i, (name, range)) in FIELDS.iter().enumerate().skip(skip) {
        // croner takes `,` or `1,,2` as a list with an empty item that matches
        // nothing, and then searches for a fire time for minutes on end (the
        // flow fuzz target found `29 , * * * *` taking 213 s to validate).
        if six[i].split(',').any(str::is_empty) {
            return Err(format!(
                "{}: the {name} field {} has an empty list item; a list is values, ranges or steps joined by commas (1,15)",
                quote(text),
                quote(six[i]),
            ));
        }
        let probe: Vec<&str> = (0..6).map(|j| if j == i { six[i] } else { "*" }).collect();
        if let Err(e) = parser.parse(&probe.join(" ")) {
            return Err(format!(
                "{}: the {name} field {} is wrong ({}); it takes {range}, `*`, lists (1,15), ranges (1-5) and steps (*/10)",
                quote(text),
                quote(six[i]),
                bounded(&e.to_string())
            ));
        }
    }
    let parsed = parser.parse(&six.join(" ")).map_err(|e| {
        format!(
            "{} is not a valid cron expression ({})",
            quote(text),
            bounded(&e.to_string())
        )
    })?;
    let now = chrono::Utc::now();
    let horizon = now + chrono::Duration::days(365 * CRON_HORIZON_YEARS + 2);
    match parsed.find_next_occurrence(&now, false) {
        Ok(next) if next <= horizon => Ok(()),
        _ => Err(format!(
            "{} never fires: no time in the next {CRON_HORIZON_YEARS} years matches it (a day that the month does not have, like 31 in February?)",
            quote(text)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_schedules() {
        for s in [
            "5m",
            "1s",
            "31days",
            "1h30m",
            "*/5 * * * *",
            "0 0 29 2 *",
            "*/10 * * * * *",
            "0 9 * * MON-FRI",
        ] {
            check(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let cases = [
            ("", "is empty"),
            ("   ", "is empty"),
            ("soon", "not an interval"),
            ("100ms", "at least 1s"),
            ("0s", "at least 1s"),
            ("32days", "at most 31 days"),
            ("584542046090years", "\"584542046090years\" is"),
            ("18446744073709551615s", "at most 31 days"),
            ("* * *", "3 fields"),
            ("61 * * * *", "the minute field \"61\" is wrong"),
            ("0 25 * * *", "the hour field \"25\" is wrong"),
            ("0 0 32 * *", "the day of month field \"32\""),
            ("0 0 * 13 *", "the month field \"13\""),
            ("0 0 * * 8", "the day of week field \"8\""),
            ("0 0 * * funday", "the day of week field"),
            ("0 0 31 2 *", "never fires"),
            ("0 0 30 2 *", "never fires"),
            (
                "29 , * * * *",
                "the minute field \",\" has an empty list item",
            ),
            (
                "0 1,,2 * * *",
                "the hour field \"1,,2\" has an empty list item",
            ),
            (
                "0 0 * * 1,",
                "the day of week field \"1,\" has an empty list item",
            ),
        ];
        for (text, expected) in cases {
            let err = check(text).unwrap_err();
            assert!(
                err.contains(expected),
                "{text:?}: expected {expected:?} in {err:?}"
            );
        }
    }
}
