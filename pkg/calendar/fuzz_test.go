package calendar

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics and that Next on whatever it
// accepts terminates quickly with a result strictly after the input that is
// itself an event time (Next(r-1s) == r).
func FuzzParse(f *testing.F) {
	seeds := []string{
		"daily", "weekly UTC", "mon..fri 21:00", "*/15", "sat..mon 3:00", "2,22:30",
		"4..10/2:0", "6,4..10:23,5/5", "sat *-1..7 15:00", "2020,2021-12-31", "1965/5-01-01",
		"02-29", "*:*:*/20", "25:00", "*/0", "mon,", "12:60", "2200-01-01", "dailyUTC",
		"2020-7..9-2/2", "*/5-*/3 */7:*/11:*/13", "fri..tue 23:59:59", " semi-annually ",
	}
	for _, s := range seeds {
		f.Add(s, int64(1773238050), uint8(0))
	}
	f.Add("*:*:*/30", int64(1792889970), uint8(1))
	f.Add("daily", int64(1648341287), uint8(3))
	f.Add("1:30", int64(1648296000), uint8(3))
	zones := []string{"UTC", "Europe/Vienna", "America/New_York", "Europe/Dublin", "Australia/Lord_Howe"}
	locs := make([]*time.Location, len(zones))
	for i, z := range zones {
		locs[i] = mustLoad(f, z)
	}
	f.Fuzz(func(t *testing.T, spec string, last int64, zone uint8) {
		ev, err := Parse(spec)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "calendar event ") {
				t.Fatalf("Parse(%q) error %q does not name the event", spec, err)
			}
			return
		}
		// Keep times within the years glibc and Go agree on.
		last = last % (200 * 365 * 86400)
		if last < 0 {
			last = -last
		}
		loc := locs[int(zone)%len(locs)]
		from := time.Unix(last, 0).In(loc)
		start := time.Now()
		got := ev.Next(from)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%q.Next(%v) took %v", spec, from, d)
		}
		if got.IsZero() {
			return
		}
		if !got.After(from) {
			t.Fatalf("%q.Next(%v) = %v; not after the input", spec, from, got)
		}
		if again := ev.Next(got.Add(-time.Second)); !again.Equal(got) {
			t.Fatalf("%q: Next(%v) = %v but Next(%v) = %v", spec, from, got, got.Add(-time.Second), again)
		}
	})
}
