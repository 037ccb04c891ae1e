//! Times of lines: a stamp without a zone given the configured one (daylight saving
//! gaps and overlaps decided), a stamp without a year given the year that puts it
//! nearest to when it was read.

use super::*;

impl LineParser {
    /// An ISO 8601 stamp syslog_loose does not read, rewritten as RFC 3339: without an
    /// offset (`2019-06-14T10:40:20.912134 rest`, read in this zone), or with a space
    /// between date and time and any offset (`2020-03-23 06:47:42.801612-0700 rest`,
    /// as macOS and some syslog-ng templates write). `None` for any other line.
    pub(super) fn zone_iso_stamp(&self, text: &str) -> Option<String> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        if start > 0
            && !text[..start].trim_end().ends_with('>')
            && !text[..start].trim_fast().is_empty()
        {
            return None;
        }
        let (mut stamp, mut rest) = text[start..].split_once(' ')?;
        let joined: String;
        if stamp.len() == 10 && rest.as_bytes().get(2) == Some(&b':') {
            // `YYYY-MM-DD HH:MM:SS…`: date and time as one stamp.
            let (time, after) = rest.split_once(' ')?;
            joined = format!("{stamp}T{time}");
            stamp = &joined;
            rest = after;
        }
        if stamp.len() < 19 || stamp.as_bytes().get(10) != Some(&b'T') {
            return None;
        }
        let at = match DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f%z") {
            Ok(at) => at,
            Err(_) => {
                let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                self.timezone
                    .from_local_datetime(&naive)
                    .earliest()?
                    .fixed_offset()
            }
        };
        Some(format!(
            "{}{} {rest}",
            &text[..start],
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        ))
    }

    /// Both stamps of a zone-less header's wall-clock time, written from its parts and
    /// the zone's offset for the hour (kept while lines stay in one hour): what
    /// [`LineParser::localize`] and [`Draft::set_time`] give, without their calendar
    /// arithmetic. `None` (they run) in an hour whose offset changes (DST), for an
    /// offset of odd seconds, or where the UTC time crosses into the next day within
    /// the hour (offsets of 30 or 45 minutes).
    pub(super) fn wall_stamps(&self, mut wall: Wall) -> Option<(Stamp, Stamp)> {
        let hour = (wall.year, wall.month, wall.day, wall.hour);
        let zone = match self.hour_zone.get() {
            Some(zone) if zone.hour == hour => zone,
            _ => {
                let zone = self.hour_zone(hour)?;
                self.hour_zone.set(Some(zone));
                zone
            }
        };
        wall.offset_secs = zone.offset_secs;
        let local = Stamp::of_wall(&wall)?;
        // Seconds past the UTC hour the local hour starts in: past its end (offsets of
        // 30 or 45 minutes) the next UTC hour, unless that is the next day's.
        let mut utc = zone.utc_start;
        let mut into_hour = (utc.minute + wall.minute) * 60 + wall.second;
        if into_hour >= 3600 {
            if utc.hour == 23 {
                return None;
            }
            utc.hour += 1;
            into_hour -= 3600;
        }
        utc.minute = into_hour / 60;
        utc.second = into_hour % 60;
        let utc = Stamp::of_wall(&utc)?;
        Some((local, utc))
    }

    /// The zone over a local hour, when its offset is the same (and unambiguous) at the
    /// hour's first and last second, and a whole number of minutes.
    pub(super) fn hour_zone(&self, hour: (i32, u32, u32, u32)) -> Option<HourZone> {
        let (year, month, day, h) = hour;
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let offset_at = |minute, second| {
            let at = date.and_hms_opt(h, minute, second)?;
            let offset = self.timezone.offset_from_local_datetime(&at).single()?;
            Some(chrono::Offset::fix(&offset).local_minus_utc())
        };
        let offset_secs = offset_at(0, 0)?;
        if offset_at(59, 59)? != offset_secs || offset_secs % 60 != 0 {
            return None;
        }
        let start = date.and_hms_opt(h, 0, 0)? - Duration::seconds(i64::from(offset_secs));
        Some(HourZone {
            hour,
            offset_secs,
            utc_start: Wall {
                year: start.year(),
                month: start.month(),
                day: start.day(),
                hour: start.hour(),
                minute: start.minute(),
                second: 0,
                micros: 0,
                offset_secs: 0,
            },
        })
    }

    /// A zone-less RFC 3164 stamp was read as if in UTC; reinterpret its wall-clock
    /// time in our zone. Stamps that carry an offset (RFC 3339, RFC 5424) are kept.
    pub(super) fn localize(
        &self,
        text: &str,
        stamp: DateTime<FixedOffset>,
    ) -> DateTime<FixedOffset> {
        if !starts_with_month(text) {
            return stamp;
        }
        let naive = stamp.naive_utc();
        match self.timezone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(at) => at.fixed_offset(),
            chrono::LocalResult::Ambiguous(first, _) => first.fixed_offset(),
            // A wall-clock time skipped by a DST change: read it with the offset in
            // force an hour earlier.
            chrono::LocalResult::None => {
                let before = naive - Duration::hours(1);
                let offset = self
                    .timezone
                    .offset_from_local_datetime(&before)
                    .earliest()
                    .map(|o| chrono::Offset::fix(&o))
                    .unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
                offset.from_local_datetime(&naive).single().unwrap_or(stamp)
            }
        }
    }
}

/// The year [`year_for`] gives for `month`/`day` whatever the time of day of the stamp
/// and of `today`, when that is so: no year puts the date on the day after `today` (the
/// one day whose times are on both sides of "at most a day ahead"), and one puts it on
/// or before `today`, the latest of which is the closest by more than a day. `None`
/// otherwise (and for a 29 February with no leap year near).
pub(super) fn year_by_day(month: u32, day: u32, today: NaiveDate) -> Option<i32> {
    let mut best = None;
    for year in [today.year() - 1, today.year(), today.year() + 1] {
        let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
            continue;
        };
        match (today - date).num_days() {
            -1 => return None,
            back if back >= 0 => best = Some(year),
            _ => {}
        }
    }
    best
}

/// The year for a stamp without one: of last year, this year and next year, the one
/// whose date is closest to `now` without being more than a day ahead of it. A
/// 29 February looks back to the nearest leap year.
pub(super) fn year_for(date: IncompleteDate, now: NaiveDateTime) -> i32 {
    let (month, day, hour, minute, second) = date;
    let this_year = now.year();
    let candidate = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(hour.min(23), minute.min(59), second.min(59)))
    };
    let limit = now + Duration::days(1);
    let best = [this_year - 1, this_year, this_year + 1]
        .into_iter()
        .filter_map(|year| candidate(year).map(|at| (year, at)))
        .filter(|(_, at)| *at <= limit)
        .min_by_key(|(_, at)| (now - *at).num_seconds().abs());
    if let Some((year, _)) = best {
        return year;
    }
    // Only 29 February gets here: the latest leap year not in the future.
    (this_year - 8..=this_year)
        .rev()
        .find(|year| candidate(*year).is_some_and(|at| at <= limit))
        .unwrap_or(this_year)
}
