package calendar

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// dump renders the parsed fields of ev for comparison in tests.
func dump(ev *Event) string {
	names := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	var days []string
	for i, n := range names {
		if ev.days&(1<<i) != 0 {
			days = append(days, n)
		}
	}
	wd := "*"
	if len(days) > 0 {
		wd = strings.Join(days, ",")
	}
	s := "wd=" + wd + " date=" + ev.year.String() + "-" + ev.month.String() + "-" + ev.day.String() +
		" time=" + ev.hour.String() + ":" + ev.minute.String() + ":" + ev.second.String()
	if ev.utc {
		s += " UTC"
	}
	return s
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		// keywords
		{"minutely", "wd=* date=*-*-* time=*:*:0"},
		{"hourly", "wd=* date=*-*-* time=*:0:0"},
		{"daily", "wd=* date=*-*-* time=0:0:0"},
		{"weekly", "wd=mon date=*-*-* time=0:0:0"},
		{"monthly", "wd=* date=*-*-1 time=0:0:0"},
		{"yearly", "wd=* date=*-1-1 time=0:0:0"},
		{"annually", "wd=* date=*-1-1 time=0:0:0"},
		{"quarterly", "wd=* date=*-1,4,7,10-1 time=0:0:0"},
		{"semiannually", "wd=* date=*-1,7-1 time=0:0:0"},
		{"semi-annually", "wd=* date=*-1,7-1 time=0:0:0"},
		{"daily UTC", "wd=* date=*-*-* time=0:0:0 UTC"},
		{"dailyUTC", "wd=* date=*-*-* time=0:0:0 UTC"},
		{"  daily  ", "wd=* date=*-*-* time=0:0:0"},
		// minutes only, H:M, H:M:S
		{"5", "wd=* date=*-*-* time=*:5:0"},
		{"*", "wd=* date=*-*-* time=*:*:0"},
		{"*/5", "wd=* date=*-*-* time=*:0/5:0"},
		{"0/5", "wd=* date=*-*-* time=*:0/5:0"},
		{"*:0", "wd=* date=*-*-* time=*:0:0"},
		{"*:*:*", "wd=* date=*-*-* time=*:*:*"},
		{"*:3:5", "wd=* date=*-*-* time=*:3:5"},
		{"21:00", "wd=* date=*-*-* time=21:0:0"},
		{"2,22:30", "wd=* date=*-*-* time=2,22:30:0"},
		{"8:00/15", "wd=* date=*-*-* time=8:0/15:0"},
		{"12/2:5", "wd=* date=*-*-* time=12/2:5:0"},
		{"4..10/2:0", "wd=* date=*-*-* time=4..10/2:0:0"},
		{"6,4..10:23,5/5", "wd=* date=*-*-* time=6,4..10:23,5/5:0"},
		{"*/2:*/15:*/20", "wd=* date=*-*-* time=0/2:0/15:0/20"},
		{"007:08:09", "wd=* date=*-*-* time=7:8:9"},
		{"23:59:59", "wd=* date=*-*-* time=23:59:59"},
		{"5/0", "wd=* date=*-*-* time=*:5/0:0"},
		// an invalid hour list is re-read as MINUTES:SECONDS, as upstream does
		{"25:00", "wd=* date=*-*-* time=*:25:0"},
		{"*/24:30", "wd=* date=*-*-* time=*:0/24:30"},
		{"mon..fri 25:00", "wd=mon,tue,wed,thu,fri date=*-*-* time=*:25:0"},
		// weekdays
		{"mon", "wd=mon date=*-*-* time=0:0:0"},
		{"MON", "wd=mon date=*-*-* time=0:0:0"},
		{"monDay", "wd=mon date=*-*-* time=0:0:0"},
		{"Tuesday,wednesday", "wd=tue,wed date=*-*-* time=0:0:0"},
		{"mon..fri", "wd=mon,tue,wed,thu,fri date=*-*-* time=0:0:0"},
		{"sat..mon", "wd=mon,sat,sun date=*-*-* time=0:0:0"},
		{"fri..mon 3:00", "wd=mon,fri,sat,sun date=*-*-* time=3:0:0"},
		{"sun..sun", "wd=sun date=*-*-* time=0:0:0"},
		{"mon,tue..wednesday,fri..sat", "wd=mon,tue,wed,fri,sat date=*-*-* time=0:0:0"},
		{"mon..fri */1:00", "wd=mon,tue,wed,thu,fri date=*-*-* time=0/1:0:0"},
		{"mon12:00", "wd=mon date=*-*-* time=12:0:0"},
		{"mon\t12:00", "wd=mon date=*-*-* time=12:0:0"},
		{"monUTC", "wd=mon date=*-*-* time=0:0:0 UTC"},
		// dates
		{"2015-10-21", "wd=* date=2015-10-21 time=0:0:0"},
		{"*-05", "wd=* date=*-*-5 time=0:0:0"},
		{"02-29", "wd=* date=*-2-29 time=0:0:0"},
		{"Sat *-1..7 15:00", "wd=sat date=*-*-1..7 time=15:0:0"},
		{"1965/5-01-01", "wd=* date=1965/5-1-1 time=0:0:0"},
		{"2020-7..9-2/2", "wd=* date=2020-7..9-2/2 time=0:0:0"},
		{"2020,2021-12-31 UTC", "wd=* date=2020,2021-12-31 time=0:0:0 UTC"},
		{"*/2-*/3", "wd=* date=*-1/2-1/3 time=0:0:0"},
		{"*/5-*-*", "wd=* date=0/5-*-* time=0:0:0"},
		{"0-0", "wd=* date=*-0-0 time=0:0:0"},
		{"2199-12-31 23:59:59 UTC", "wd=* date=2199-12-31 time=23:59:59 UTC"},
		{"2020-02-30 12:00", "wd=* date=2020-2-30 time=12:0:0"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			ev, err := Parse(tt.spec)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.spec, err)
			}
			if got := dump(ev); got != tt.want {
				t.Errorf("Parse(%q) = %s; want %s", tt.spec, got, tt.want)
			}
			if ev.String() != tt.spec {
				t.Errorf("String() = %q; want %q", ev.String(), tt.spec)
			}
			if ev.UTC() != strings.HasSuffix(strings.TrimSpace(tt.spec), "UTC") {
				t.Errorf("UTC() = %v for %q", ev.UTC(), tt.spec)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		spec string
		want string // fragment of the error message
	}{
		{"", "event is empty"},
		{" \t\n", "event is empty"},
		{"UTC", "expected a weekday, date or time"},
		{"Daily", `unknown weekday "Daily"`},
		{"daily 12:00", `unknown weekday "daily"`},
		{"weekly UTC UTC", `unknown weekday "weekly"`},
		{"utc", `unknown weekday "utc"`},
		{"12:00 utc", `unexpected "utc"`},
		{"mon foo", `unexpected "foo"`},
		{"mon,", "expected a weekday name"},
		{"mon..", "expected a weekday name"},
		{"mon..xyz", `unknown weekday "xyz"`},
		{"60", "minute 60 too large (maximum 59)"},
		{"12:60", "minute 60 too large (maximum 59)"},
		{"60:00", "hour 60 too large (maximum 23)"},
		{"mon..fri 60:00", "hour 60 too large (maximum 23)"},
		{"12:00:60", "second 60 too large (maximum 59)"},
		{"*:*:60", "second 60 too large (maximum 59)"},
		{"*/60", "minute 60 too large (maximum 59)"},
		{"*/0", `a repetition of 0 ("*/0") is not allowed`},
		{"*/0:00", `a repetition of 0 ("*/0") is not allowed`},
		{"10..5:00", "hour range 10..5: start is bigger than end"},
		{"50..10", "minute range 50..10: start is bigger than end"},
		{"5,99", "minute 99 too large (maximum 59)"},
		{"2200-01-01", "year 2200 too large (maximum 2199)"},
		{"2020-13-01", "month 13 too large (maximum 12)"},
		{"2020-01-32", "day 32 too large (maximum 31)"},
		{"*-32", "day 32 too large (maximum 31)"},
		{"99999999999", "minute 99999999999 too large"},
		{"12:00 mon", `unexpected "mon"`},
		{"12:00 12:00", `unexpected "12:00"`},
		{"*-~1", "expected a number for the day"},
		{"12:00.5", `unexpected ".5"`},
		{"mon..fri,", "expected a weekday name"},
		{"1,", "expected a number for the minute"},
		{"1..", `expected a number for the minute`},
		{"@1234", `unexpected "@1234"`},
		{"today", `unknown weekday "today"`},
		{"12:00 Europe/Vienna", `unexpected "Europe/Vienna"`},
		{"-5", `unexpected "-5"`},
		{strings.Repeat("1,", 3000) + "1", "event too long"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			ev, err := Parse(tt.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %s; want error containing %q", tt.spec, dump(ev), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %q; want it to contain %q", tt.spec, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "calendar event ") {
				t.Errorf("Parse(%q) error = %q; want it to name the calendar event", tt.spec, err)
			}
		})
	}
}

// upstreamCase is one line of testdata/upstream_next.tsv, produced by the
// upstream crate (testdata/upstream/gen.sh).
type upstreamCase struct {
	zone, spec, last, result string
}

func readUpstreamCases(t testing.TB) []upstreamCase {
	t.Helper()
	f, err := os.Open("testdata/upstream_next.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []upstreamCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 4 {
			t.Fatalf("testdata/upstream_next.tsv: bad line %q", sc.Text())
		}
		cases = append(cases, upstreamCase{fields[0], fields[1], fields[2], fields[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 1000 {
		t.Fatalf("testdata/upstream_next.tsv: only %d cases", len(cases))
	}
	return cases
}

func TestParseMatchesUpstream(t *testing.T) {
	accepted := 0
	for _, c := range readUpstreamCases(t) {
		_, err := Parse(c.spec)
		wantErr := c.result == "perr"
		if (err != nil) != wantErr {
			t.Errorf("Parse(%q) error = %v; upstream rejects: %v", c.spec, err, wantErr)
		}
		if !wantErr {
			accepted++
		}
	}
	if accepted < 500 {
		t.Errorf("only %d accepted events in the upstream cases", accepted)
	}
}
