//! Calendar windows in UTC: the period a moment belongs to, and when it ends. Caps reset on
//! UTC day and month boundaries; rate limits count per UTC minute.

use time::{Date, Month, OffsetDateTime, Time};

/// A window that usage is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// A UTC minute (rate limits).
    Minute,
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
    /// Since the beginning.
    AllTime,
}

/// One period of a window: which one (a number that grows with time) and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    /// Minutes, days or months since 1970-01 (0 for all time).
    pub index: u64,
    /// When the period ends, in Unix milliseconds (`u64::MAX` for all time).
    pub ends_at_ms: u64,
}

impl Window {
    /// Its name in the config, the admin API and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Day => "daily",
            Window::Month => "monthly",
            Window::AllTime => "all-time",
        }
    }

    /// When the period numbered `index` ends (Unix ms; `u64::MAX` for all time, or for a
    /// month past the calendar's end).
    pub fn end_of(self, index: u64) -> u64 {
        match self {
            Window::AllTime => u64::MAX,
            Window::Minute => index.saturating_add(1).saturating_mul(60_000),
            Window::Day => index.saturating_add(1).saturating_mul(86_400_000),
            Window::Month => {
                let start = i32::try_from(index / 12)
                    .ok()
                    .and_then(|y| y.checked_add(1970))
                    .and_then(|year| {
                        let month = Month::try_from(u8::try_from(index % 12 + 1).ok()?).ok()?;
                        Date::from_calendar_date(year, month, 1).ok()
                    })
                    .map(|d| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp());
                match start.and_then(|s| u64::try_from(s).ok()) {
                    Some(s) => self.period(s.saturating_mul(1000)).ends_at_ms,
                    None => u64::MAX,
                }
            }
        }
    }

    /// The period `unix_ms` falls in.
    pub fn period(self, unix_ms: u64) -> Period {
        match self {
            Window::AllTime => Period {
                index: 0,
                ends_at_ms: u64::MAX,
            },
            Window::Minute => {
                let index = unix_ms / 60_000;
                Period {
                    index,
                    ends_at_ms: (index + 1) * 60_000,
                }
            }
            Window::Day => {
                let index = unix_ms / 86_400_000;
                Period {
                    index,
                    ends_at_ms: (index + 1) * 86_400_000,
                }
            }
            Window::Month => {
                let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
                let at =
                    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let (year, month) = (at.year(), at.month());
                let index =
                    u64::try_from((year - 1970) * 12 + i32::from(u8::from(month)) - 1).unwrap_or(0);
                let (next_year, next_month) = match month {
                    Month::December => (year + 1, Month::January),
                    m => (year, m.next()),
                };
                let ends = Date::from_calendar_date(next_year, next_month, 1)
                    .map(|d| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp())
                    .unwrap_or(i64::MAX);
                Period {
                    index,
                    ends_at_ms: u64::try_from(ends).unwrap_or(u64::MAX).saturating_mul(1000),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-24T15:49:56Z
    const NOW: u64 = 1_795_535_396_000;

    #[test]
    fn days_and_months_end_at_utc_midnight() {
        let d = Window::Day.period(NOW);
        // 2026-11-25T00:00:00Z
        assert_eq!(d.ends_at_ms, 1_795_564_800_000);
        assert_eq!(d.ends_at_ms % 86_400_000, 0);
        assert!(d.ends_at_ms > NOW && d.ends_at_ms - NOW <= 86_400_000);
        let m = Window::Month.period(NOW);
        // 2026-12-01T00:00:00Z
        assert_eq!(m.ends_at_ms, 1_796_083_200_000);
        assert_eq!(m.index, (2026 - 1970) * 12 + 10);
        // The last millisecond of November is still November; the next is December.
        assert_eq!(Window::Month.period(m.ends_at_ms - 1).index, m.index);
        let dec = Window::Month.period(m.ends_at_ms);
        assert_eq!(dec.index, m.index + 1);
        // December ends at the new year.
        assert_eq!(dec.ends_at_ms, 1_798_761_600_000);
        assert_eq!(Window::Month.period(dec.ends_at_ms).index, m.index + 2);
    }

    #[test]
    fn a_periods_end_follows_from_its_number() {
        for t in [
            0,
            NOW,
            1_833_796_800_000,
            1_798_761_599_999,
            1_798_761_600_000,
        ] {
            for w in [Window::Minute, Window::Day, Window::Month, Window::AllTime] {
                let p = w.period(t);
                assert_eq!(w.end_of(p.index), p.ends_at_ms, "{w:?} at {t}");
            }
        }
        assert_eq!(Window::Month.end_of(u64::MAX), u64::MAX);
        assert_eq!(Window::Day.end_of(u64::MAX), u64::MAX);
    }

    #[test]
    fn february_of_a_leap_year_and_minutes() {
        // 2028-02-10T12:00:00Z -> ends 2028-03-01T00:00:00Z.
        let feb = Window::Month.period(1_833_796_800_000);
        assert_eq!(feb.ends_at_ms, 1_835_481_600_000);
        let m = Window::Minute.period(61_500);
        assert_eq!((m.index, m.ends_at_ms), (1, 120_000));
        assert_eq!(Window::AllTime.period(NOW).ends_at_ms, u64::MAX);
    }
}
