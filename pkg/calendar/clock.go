package calendar

import (
	"errors"
	"fmt"
	"time"
)

// brokenDown is a broken-down calendar time like C's struct tm. Fields may
// hold out-of-range values (minute 60, day 32, month 13) until normalised.
type brokenDown struct {
	year int64 // Gregorian year, e.g. 2026
	mon  int64 // 0 = January
	mday int64
	hour int64
	min  int64
	sec  int64
	wday int64 // 0 = Sunday; valid after normalisation only
}

// maxYear bounds the years the search works with; upstream is limited by C's
// int tm_year, far beyond any schedule's use.
const maxYear = 1_000_000_000

var errOutOfRange = errors.New("time out of range")

// clock converts between Unix seconds and broken-down time the way upstream's
// TmEditor does: gmtime/timegm for UTC events, localtime/mktime otherwise.
type clock interface {
	// breakDown is gmtime_r or localtime_r.
	breakDown(t int64) brokenDown
	// normalize is timegm or mktime with tm_isdst = -1: it resolves bd to
	// Unix seconds and rewrites bd as the broken-down form of the result.
	normalize(bd *brokenDown) (int64, error)
}

// daysFromCivil returns the days since 1970-01-01 of the proleptic Gregorian
// date y-m-d (m in 1..12).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// wallSeconds returns bd read as if it were UTC, in seconds since the epoch,
// normalising out-of-range fields arithmetically (glibc's ydhms_diff).
func wallSeconds(bd brokenDown) (int64, error) {
	year := bd.year + floorDiv(bd.mon, 12)
	if year < -maxYear || year > maxYear || bd.mday < -1e9 || bd.mday > 1e9 ||
		bd.hour < -1e9 || bd.hour > 1e9 || bd.min < -1e9 || bd.min > 1e9 || bd.sec < -1e9 || bd.sec > 1e9 {
		return 0, fmt.Errorf("broken-down time %+v: %w", bd, errOutOfRange)
	}
	days := daysFromCivil(year, floorMod(bd.mon, 12)+1, 1) + bd.mday - 1
	return days*86400 + bd.hour*3600 + bd.min*60 + bd.sec, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// fromTime breaks down an already-zoned time.Time.
func fromTime(t time.Time) brokenDown {
	return brokenDown{
		year: int64(t.Year()),
		mon:  int64(t.Month()) - 1,
		mday: int64(t.Day()),
		hour: int64(t.Hour()),
		min:  int64(t.Minute()),
		sec:  int64(t.Second()),
		wday: int64(t.Weekday()),
	}
}

// utcClock is gmtime/timegm.
type utcClock struct{}

func (utcClock) breakDown(t int64) brokenDown { return fromTime(time.Unix(t, 0).UTC()) }

func (c utcClock) normalize(bd *brokenDown) (int64, error) {
	t, err := wallSeconds(*bd)
	if err != nil {
		return 0, err
	}
	if t == -1 {
		// timegm's error value; upstream treats it as a failure.
		return 0, fmt.Errorf("timegm(%+v) returned -1: %w", *bd, errOutOfRange)
	}
	*bd = c.breakDown(t)
	return t, nil
}

// localClock is localtime/mktime in loc, reproducing glibc's mktime: it
// inverts localtime by probing from the offset of its previous result (glibc
// keeps that offset in a static variable), which decides how times in a
// spring-forward gap or a fall-back overlap are resolved.
type localClock struct {
	loc *time.Location
	// lastOffset is glibc's localtime_offset: result minus requested wall
	// time (so minus the UTC offset) of the previous mktime call.
	lastOffset int64
}

func newLocalClock(loc *time.Location, start int64) *localClock {
	_, off := time.Unix(start, 0).In(loc).Zone()
	return &localClock{loc: loc, lastOffset: -int64(off)}
}

func (c *localClock) breakDown(t int64) brokenDown { return fromTime(time.Unix(t, 0).In(c.loc)) }

// probe is localtime_r plus what mktime needs from it: the wall time as
// seconds and the DST flag.
func (c *localClock) probe(t int64) (wall int64, isDST bool) {
	lt := time.Unix(t, 0).In(c.loc)
	_, off := lt.Zone()
	return t + int64(off), lt.IsDST()
}

// maxProbes is glibc's remaining_probes.
const maxProbes = 6

func (c *localClock) normalize(bd *brokenDown) (int64, error) {
	req := *bd
	secRequested := req.sec
	// glibc clamps seconds for probing (leap seconds) and adds the
	// difference back afterwards.
	req.sec = min(max(req.sec, 0), 59)
	want, err := wallSeconds(req)
	if err != nil {
		return 0, err
	}
	t0 := want + c.lastOffset
	t, t1, t2 := t0, t0, t0
	prevDST := false
	probes := maxProbes
	for {
		wall, isDST := c.probe(t)
		dt := want - wall
		if dt == 0 {
			break
		}
		if t == t1 && t != t2 && (!prevDST || isDST) {
			// Oscillating around a spring-forward gap: glibc settles on
			// the current probe unless only the previous one was DST.
			break
		}
		probes--
		if probes == 0 {
			return 0, fmt.Errorf("mktime(%+v) in %s found no time: %w", *bd, c.loc, errOutOfRange)
		}
		t1, t2, t, prevDST = t2, t, t+dt, isDST
	}
	c.lastOffset = t - want
	if wall, _ := c.probe(t); secRequested != floorMod(wall, 60) {
		// Zones here have no leap seconds, so the probe's seconds are the
		// clamped request and this adds back what the clamp removed.
		t += secRequested - req.sec
	}
	if t == -1 {
		return 0, fmt.Errorf("mktime(%+v) returned -1: %w", *bd, errOutOfRange)
	}
	*bd = c.breakDown(t)
	return t, nil
}
