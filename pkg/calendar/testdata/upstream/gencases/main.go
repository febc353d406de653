// Command gencases prints generated calendar events with a "last run" Unix
// time, one "event<TAB>last" per line, as input for the upstream oracle
// (see ../gen.sh). Mode "events" builds mostly valid events and picks times
// near the zone's UTC offset changes; mode "junk" glues random tokens.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"
)

type gen struct{ r *rand.Rand }

func (g gen) pick(s ...string) string { return s[g.r.Intn(len(s))] }

func (g gen) item(limit int) string {
	a := g.r.Intn(limit)
	switch g.r.Intn(6) {
	case 0, 1:
		return strconv.Itoa(a)
	case 2:
		return fmt.Sprintf("%d..%d", a, a+g.r.Intn(limit-a))
	case 3:
		return fmt.Sprintf("%d/%d", a, g.r.Intn(limit))
	case 4:
		return fmt.Sprintf("%d..%d/%d", a, a+g.r.Intn(limit-a), g.r.Intn(limit))
	default:
		return "*/" + strconv.Itoa(g.r.Intn(limit))
	}
}

func (g gen) list(limit int) string {
	if g.r.Intn(4) == 0 {
		return "*"
	}
	parts := make([]string, 1+g.r.Intn(3))
	for i := range parts {
		parts[i] = g.item(limit)
	}
	return strings.Join(parts, ",")
}

var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "Monday", "SUNDAY", "fRi"}

func (g gen) event() string {
	if g.r.Intn(10) == 0 {
		return g.pick("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
			"quarterly", "semiannually", "semi-annually")
	}
	var parts []string
	if g.r.Intn(3) == 0 {
		var ws []string
		for range 1 + g.r.Intn(2) {
			w := g.pick(weekdays...)
			if g.r.Intn(2) == 0 {
				w += ".." + g.pick(weekdays...)
			}
			ws = append(ws, w)
		}
		parts = append(parts, strings.Join(ws, ","))
	}
	if g.r.Intn(3) == 0 {
		d := g.list(13) + "-" + g.list(32)
		if g.r.Intn(2) == 0 {
			y := g.list(2200)
			if g.r.Intn(2) == 0 {
				y = strconv.Itoa(2020 + g.r.Intn(20))
			}
			d = y + "-" + d
		}
		parts = append(parts, d)
	}
	if len(parts) == 0 || g.r.Intn(4) != 0 {
		switch g.r.Intn(3) {
		case 0:
			parts = append(parts, g.list(60))
		case 1:
			parts = append(parts, g.list(24)+":"+g.list(60))
		default:
			parts = append(parts, g.list(24)+":"+g.list(60)+":"+g.list(60))
		}
	}
	ev := strings.Join(parts, " ")
	if g.r.Intn(5) == 0 {
		ev += " UTC"
	}
	return ev
}

var junkTokens = []string{"0", "1", "5", "7", "12", "23", "24", "25", "29", "30", "31", "32", "59", "60",
	"99", "2020", "2199", "2200", "4294967296", "007", "*", "/", "..", ".", ",", ":", "-", " ", "  ",
	"\t", "UTC", " UTC", "utc", "mon", "Fri", "sunday", "xyz", "daily", "weekly", "semi-annually",
	"Daily", "~", "@"}

func (g gen) junk() string {
	var b strings.Builder
	for range 1 + g.r.Intn(8) {
		b.WriteString(g.pick(junkTokens...))
	}
	// PVE trims before parsing; the oracle sees what the Perl wrapper passes on.
	return strings.Trim(strings.ReplaceAll(b.String(), "\t", " "), " ")
}

// offsetChanges lists times shortly before the zone's UTC offset changes.
func offsetChanges(loc *time.Location) []int64 {
	var out []int64
	end := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for t := time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC).Unix(); t < end; t += 1800 {
		_, o1 := time.Unix(t, 0).In(loc).Zone()
		_, o2 := time.Unix(t+1800, 0).In(loc).Zone()
		if o1 != o2 {
			out = append(out, t)
		}
	}
	return out
}

func (g gen) last(changes []int64) int64 {
	if len(changes) > 0 && g.r.Intn(3) != 0 {
		last := changes[g.r.Intn(len(changes))] - 3*86400 + g.r.Int63n(4*86400)
		if g.r.Intn(2) == 0 {
			last -= last%60 + 1
		}
		return last
	}
	last := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + g.r.Int63n(10*365*86400)
	if g.r.Intn(2) == 0 {
		last -= last % 3600
	}
	return last
}

func main() {
	mode := flag.String("mode", "events", "events or junk")
	n := flag.Int("n", 100, "number of lines")
	seed := flag.Int64("seed", 1, "random seed")
	zone := flag.String("zone", "UTC", "time zone whose offset changes to favour")
	flag.Parse()
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	g := gen{r: rand.New(rand.NewSource(*seed))}
	changes := offsetChanges(loc)
	for range *n {
		var ev string
		if *mode == "junk" {
			ev = g.junk()
		} else {
			ev = g.event()
		}
		fmt.Printf("%s\t%d\n", ev, g.last(changes))
	}
}
