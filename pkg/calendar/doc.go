// Package calendar parses PVE calendar events, the systemd-like schedules of
// backup (vzdump) and replication jobs, and computes their next run times
// exactly as PVE does (proxmox-rs proxmox-time's CalendarEvent, which PVE's
// Perl code calls through PVE::CalendarEvent). An *Event is a
// github.com/robfig/cron/v3 Schedule.
//
// # Grammar
//
//	[WEEKDAYS] [[YEARS-]MONTHS-DAYS] [[HOURS:]MINUTES[:SECONDS]] [UTC]
//
// WEEKDAYS is a comma list of names (mon, tue, ... or monday, ...; any
// case) and ranges like mon..fri; ranges wrap, so sat..mon is sat,sun,mon.
// Every numeric field is "*", "*/N" or a comma list of V, A..B, V/N
// (V, V+N, ...) and A..B/N. A lone number is the minute: "5" is minute 5 of
// every hour, "*/15" every quarter hour. Without a time the event fires at
// 00:00:00; without seconds at second 0; without hours every hour. The
// keywords minutely, hourly, daily, weekly, monthly, yearly/annually,
// quarterly and semiannually/semi-annually stand alone (case-sensitive),
// optionally followed by UTC. With the UTC suffix the event is evaluated in
// UTC, otherwise in the time zone of the time passed to Next.
//
// Parse accepts exactly what PVE accepts (checked against the upstream crate
// on several hundred thousand generated strings, see testdata/upstream),
// including its quirks:
//   - Leading and trailing white space is trimmed (PVE's Perl wrapper does);
//     "UTC" is recognised as a plain suffix, so "dailyUTC" is "daily UTC".
//   - Values are only checked against the field width: hours < 24,
//     minutes and seconds < 60, months < 13, days < 32, years < 2200. Month
//     and day 0 and dates like 02-30 are accepted and simply never match.
//   - A list that fails as HOURS is re-read as MINUTES[:SECONDS], so
//     "25:00" means minute 25, second 0 of every hour (and "mon..fri 25:00"
//     is valid), while "60:00" and "12:60" are rejected.
//   - "*/0" is rejected; "V/0" and "A..B/0" mean just V and A.
//   - V/N without an end can run past the field's range (minute 60 and
//     so on); the search then rolls over into the next hour, day, ...
//     exactly like upstream's mktime-normalised arithmetic.
//
// # Next run times
//
// Next searches from t+1s (whole seconds) like upstream: starting from the
// broken-down local time, it checks year, month, day, weekday, hour, minute
// and second in turn; at the first field that does not match it jumps to the
// field's next allowed value (or carries into the next coarser unit),
// resets the finer fields to their minimum, normalises the result through
// mktime and starts over. It gives up (zero time) after 1001 steps, when no
// allowed year is left ("2021-02-29"), or where upstream's mktime fails.
//
// Local time is normalised with an exact model of glibc's mktime (tm_isdst
// = -1), which probes from the UTC offset of its previous result; the model
// starts each search with the offset in force at t+1s. The consequences
// around daylight-saving changes, e.g. in Europe/Vienna:
//   - Spring forward (02:00 CET becomes 03:00 CEST): a wall time in the
//     missing hour is normalised to the same minute an hour later (02:00 to
//     03:00 CEST), where the hour no longer matches, so a daily "2:30" does
//     not fire that day at all; "*/15" goes on 01:45 CET, 03:00 CEST.
//   - Fall back (03:00 CEST becomes 02:00 CET): a wall time in the
//     repeated hour resolves to its first (CEST) occurrence, and stepping
//     on from there by minutes or hours lands after the repeated hour, so it
//     usually runs once: "*/15" goes 02:45 CEST, 03:00 CET, and a daily
//     "2:30" fires at 02:30 CEST only. Schedules that match without any
//     normalisation (e.g. "*:*:*") or step by seconds do walk through the
//     second occurrence.
//
// These are the results the PVE scheduler computes; they are tested against
// values produced by the upstream crate with the real glibc.
//
// Month ends need no special handling: "*-31" fires only in months with a
// 31st, "02-29" only in leap years, "*-29..31" on whichever of those days
// exist.
//
// # Deliberate deviations
//
// In two rare DST situations upstream's result is unusable, and Next
// returns the first wall-clock time matching the event whose instant is
// after t instead (Event.NextUnix likewise):
//   - upstream returns a time before t: in zones with negative DST such as
//     Europe/Dublin, where mktime resolves a skipped wall time backwards
//     ("daily" at 00:34 GMT on the spring-forward day yields 00:00 GMT the
//     same day), and when a seconds repetition runs into a repeated hour
//     ("*:*:*/30" at 02:59:30 CEST on the fall-back day yields 02:00 CEST);
//   - upstream finds nothing because the search keeps falling back into a
//     skipped hour until its step limit (Europe/Dublin "1:30" the day before
//     spring forward).
//
// A past time would make a cron scheduler fire in a loop and "none" would
// stop it for good, where PVE's scheduler simply recomputes a minute later.
//
// Parse rejects events longer than 4096 bytes (PVE has no limit).
package calendar
