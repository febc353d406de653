package calendar

import (
	"errors"
	"time"

	"github.com/robfig/cron/v3"
)

// weekdaySet is a set of weekdays, bit 0 = Monday .. bit 6 = Sunday.
type weekdaySet uint8

const allWeekdays weekdaySet = 1<<7 - 1

// Event is a parsed PVE calendar event. It is immutable and safe for
// concurrent use.
type Event struct {
	spec string
	utc  bool
	days weekdaySet // empty = any day

	// Empty lists match any value.
	year, month, day     fieldList
	hour, minute, second fieldList
}

var _ cron.Schedule = (*Event)(nil)

// String returns the event as it was given to Parse.
func (ev *Event) String() string { return ev.spec }

// UTC reports whether the event carries the "UTC" suffix and is evaluated in
// UTC instead of the caller's time zone.
func (ev *Event) UTC() bool { return ev.utc }

// maxIterations is upstream's bound on the search loop: it gives up when the
// counter exceeds 1000, i.e. after 1001 steps.
const maxIterations = 1000

const secondsPerDay = 86400

// Next returns the first time strictly after t (from t+1s, truncated to whole
// seconds) at which the event fires, in t's location (UTC for UTC events). It
// returns the zero time when there is none: no matching date exists (e.g.
// "2021-02-29"), the search gave up after 1000 steps, or upstream would fail
// with an error (time out of range, or mktime finding no time).
func (ev *Event) Next(t time.Time) time.Time {
	loc := t.Location()
	if ev.utc {
		loc = time.UTC
	}
	next, ok := ev.nextUnix(t.Unix(), loc)
	if !ok {
		return time.Time{}
	}
	return time.Unix(next, 0).In(loc)
}

// NextN returns up to n successive run times after t, as PVE's
// schedule-analyze API lists them; it stops early when there are no more.
func (ev *Event) NextN(t time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		next := ev.Next(t)
		if next.IsZero() {
			break
		}
		out = append(out, next)
		t = next
	}
	return out
}

// NextUnix is Next on Unix seconds, like upstream's compute_next_event: the
// first event time after last, evaluated in loc unless the event is UTC. ok is
// false when there is none.
func (ev *Event) NextUnix(last int64, loc *time.Location) (next int64, ok bool) {
	if ev.utc || loc == nil {
		loc = time.UTC
	}
	return ev.nextUnix(last, loc)
}

func (ev *Event) nextUnix(last int64, loc *time.Location) (int64, bool) {
	next, err := ev.upstreamNext(last, loc)
	switch {
	case err == nil && next > last:
		return next, true
	case loc == time.UTC:
		return 0, false
	case err == nil || errors.Is(err, errTooManySteps):
		// glibc's mktime resolved a skipped or repeated wall time to an
		// instant before the search start (Europe/Dublin's negative DST,
		// or a seconds repetition running into a repeated hour), or the
		// search kept falling back into a skipped hour until it gave up.
		// Upstream returns that past time or nothing; a cron.Schedule must
		// do neither.
		return ev.nextWallTime(last, loc)
	default:
		return 0, false
	}
}

// upstreamNext is upstream's compute_next_event, result for result: the
// next event after last in loc, which in rare DST cases lies in the past, or
// an error where upstream finds none.
func (ev *Event) upstreamNext(last int64, loc *time.Location) (int64, error) {
	if last >= 1<<62 || last <= -(1<<62) {
		return 0, errOutOfRange
	}
	start := last + 1
	var c clock
	if loc == time.UTC {
		c = utcClock{}
	} else {
		c = newLocalClock(loc, start)
	}
	return ev.search(c, start)
}

// maxWallTries bounds nextWallTime's skipping of wall times that do not exist.
const maxWallTries = 8

// nextWallTime is the fallback when upstream's result lies in the past: the
// first wall-clock time matching the event whose instant is after last.
func (ev *Event) nextWallTime(last int64, loc *time.Location) (int64, bool) {
	_, off := time.Unix(last, 0).In(loc).Zone()
	wall := last + int64(off)
	for range maxWallTries {
		next, err := ev.search(utcClock{}, wall+1)
		if err != nil {
			return 0, false
		}
		best, found := int64(0), false
		for _, probe := range []int64{next - secondsPerDay, next, next + secondsPerDay, last} {
			_, o := time.Unix(probe, 0).In(loc).Zone()
			t := next - int64(o)
			if _, o2 := time.Unix(t, 0).In(loc).Zone(); o2 == o && t > last && (!found || t < best) {
				best, found = t, true
			}
		}
		if found {
			return best, true
		}
		wall = next
	}
	return 0, false
}

// searchError says why a search found no time.
type searchError string

func (e searchError) Error() string { return string(e) }

const (
	errNoYear       searchError = "no matching year"
	errTooManySteps searchError = "gave up after 1000 steps"
	errNegativeYear searchError = "negative year"
)

// editor is upstream's TmEditor: a broken-down time whose setters reset the
// finer fields and normalise through the clock.
type editor struct {
	c  clock
	bd brokenDown
}

func (e *editor) normalize() error {
	_, err := e.c.normalize(&e.bd)
	return err
}

func (e *editor) addYears(n int64) error {
	if n == 0 {
		return nil
	}
	e.bd.mon, e.bd.mday, e.bd.hour, e.bd.min, e.bd.sec = 0, 1, 0, 0, 0
	e.bd.year += n
	return e.normalize()
}

func (e *editor) addMonths(n int64) error {
	if n == 0 {
		return nil
	}
	e.bd.mday, e.bd.hour, e.bd.min, e.bd.sec = 1, 0, 0, 0
	e.bd.mon += n
	return e.normalize()
}

func (e *editor) addDays(n int64) error {
	if n == 0 {
		return nil
	}
	e.bd.hour, e.bd.min, e.bd.sec = 0, 0, 0
	e.bd.mday += n
	return e.normalize()
}

func (e *editor) setTime(hour, minute, sec int64) error {
	e.bd.hour, e.bd.min, e.bd.sec = hour, minute, sec
	return e.normalize()
}

func (e *editor) setMinSec(minute, sec int64) error {
	e.bd.min, e.bd.sec = minute, sec
	return e.normalize()
}

func (e *editor) setSec(sec int64) error {
	e.bd.sec = sec
	return e.normalize()
}

// dayNum is the weekday with Monday = 0 .. Sunday = 6.
func (e *editor) dayNum() uint { return uint((e.bd.wday + 6) % 7) }

// search is upstream's compute_next_event loop: fix fields coarse to fine,
// jumping to the next candidate value of the first mismatching field and
// resetting the finer ones, until everything matches.
func (ev *Event) search(c clock, start int64) (int64, error) {
	e := &editor{c: c, bd: c.breakDown(start)}
	allDays := ev.days == 0 || ev.days == allWeekdays
	for count := 0; ; count++ {
		if count > maxIterations {
			return 0, errTooManySteps
		}
		if !ev.year.any() {
			if e.bd.year < 0 {
				return 0, errNegativeYear
			}
			year := uint32(e.bd.year)
			if !ev.year.contains(year) {
				n, ok := ev.year.next(year)
				if !ok {
					return 0, errNoYear
				}
				if err := e.addYears(int64(n - year)); err != nil {
					return 0, err
				}
				continue
			}
		}
		if !ev.month.any() {
			month := uint32(e.bd.mon + 1)
			if !ev.month.contains(month) {
				var err error
				if n, ok := ev.month.next(month); ok {
					err = e.addMonths(int64(n - month))
				} else {
					err = e.addYears(1)
				}
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		if !ev.day.any() {
			day := uint32(e.bd.mday)
			if !ev.day.contains(day) {
				var err error
				if n, ok := ev.day.next(day); ok {
					err = e.addDays(int64(n - day))
				} else {
					err = e.addMonths(1)
				}
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		if !allDays {
			d := e.dayNum()
			if ev.days&(1<<d) == 0 {
				step := int64(7 - d)
				for n := d + 1; n < 7; n++ {
					if ev.days&(1<<n) != 0 {
						step = int64(n - d)
						break
					}
				}
				if err := e.addDays(step); err != nil {
					return 0, err
				}
				continue
			}
		}
		if !ev.hour.any() {
			hour := uint32(e.bd.hour)
			if !ev.hour.contains(hour) {
				var err error
				if n, ok := ev.hour.next(hour); ok {
					err = e.setTime(int64(n), 0, 0)
				} else {
					err = e.addDays(1)
				}
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		if !ev.minute.any() {
			minute := uint32(e.bd.min)
			if !ev.minute.contains(minute) {
				var err error
				if n, ok := ev.minute.next(minute); ok {
					err = e.setMinSec(int64(n), 0)
				} else {
					err = e.setTime(e.bd.hour+1, 0, 0)
				}
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		if !ev.second.any() {
			sec := uint32(e.bd.sec)
			if !ev.second.contains(sec) {
				var err error
				if n, ok := ev.second.next(sec); ok {
					err = e.setSec(int64(n))
				} else {
					err = e.setMinSec(e.bd.min+1, 0)
				}
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		bd := e.bd
		return c.normalize(&bd)
	}
}
