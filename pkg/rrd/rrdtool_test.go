package rrd

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAgainstRRDtool replays random updates (gaps beyond the heartbeat,
// unknowns, counter resets, several updates per step and steps without
// any) into rrdtool itself and into a Series and compares what fetch
// answers for every archive and consolidation. It runs where the rrdtool
// command is installed (Debian: apt install rrdtool) and is skipped
// elsewhere; the hand-worked tables in update_test.go always run.
func TestAgainstRRDtool(t *testing.T) {
	bin, err := exec.LookPath("rrdtool")
	if err != nil {
		t.Skip("rrdtool not installed")
	}
	defs := []string{
		"DS:g:GAUGE:120:0:U", "DS:d:DERIVE:120:0:U", "DS:h:GAUGE:300:0:100",
		"RRA:AVERAGE:0.5:1:50", "RRA:AVERAGE:0.5:3:40", "RRA:AVERAGE:0.5:7:30",
		"RRA:MAX:0.5:1:50", "RRA:MAX:0.5:3:40", "RRA:MAX:0.5:7:30",
	}
	s, err := NewSchema("test", 60, defs...)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(15) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			start := int64(1_700_000_000) + rnd.Int64N(3600)
			file := filepath.Join(t.TempDir(), "x.rrd")
			args := []string{"create", file, "--start", fmt.Sprint(start), "--step", "60"}
			run(t, bin, append(args, defs...)...)
			sr := NewSeries(s, start)
			tm, counter := start, int64(1000)
			var recs []string
			for range 400 {
				switch x := rnd.IntN(100); {
				case x < 70:
					tm += 1 + rnd.Int64N(30)
				case x < 90:
					tm += 30 + rnd.Int64N(100)
				default:
					tm += 100 + rnd.Int64N(400)
				}
				g := fmt.Sprint(rnd.IntN(1000))
				if rnd.IntN(10) == 0 {
					g = "U"
				}
				counter += rnd.Int64N(5000)
				if rnd.IntN(25) == 0 {
					counter = rnd.Int64N(100) // reset
				}
				d := fmt.Sprint(counter)
				if rnd.IntN(15) == 0 {
					d = "U"
				}
				h := strconv.FormatFloat(rnd.Float64()*120, 'f', 3, 64) // above max sometimes
				rec := fmt.Sprintf("%d:%s:%s:%s", tm, g, d, h)
				if err := sr.UpdateRecord(rec); err != nil {
					t.Fatalf("update %s: %v", rec, err)
				}
				recs = append(recs, rec)
			}
			for i := 0; i < len(recs); i += 100 {
				run(t, bin, append([]string{"update", file}, recs[i:min(i+100, len(recs))]...)...)
			}
			known := 0
			for _, a := range s.rra {
				rs := 60 * a.Steps
				from, to := tm-rs*a.Rows+rs, tm
				got, err := sr.Fetch(a.CF, from, to, rs)
				if err != nil {
					t.Fatal(err)
				}
				out := run(t, bin, "fetch", file, a.CF.String(), "-s", fmt.Sprint(from), "-e", fmt.Sprint(to), "-r", fmt.Sprint(rs))
				known += compareFetch(t, fmt.Sprintf("%s/%d", a.CF, a.Steps), got, out)
			}
			if known < 100 {
				t.Errorf("only %d known values compared", known)
			}
		})
	}
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rrdtool %s: %v: %s", args[0], err, stderr.Bytes())
	}
	return out
}

// compareFetch compares a Result with rrdtool fetch's text output.
func compareFetch(t *testing.T, what string, got *Result, out []byte) (known int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for sc.Scan() {
		line := sc.Text()
		ts, vals, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		tm, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil {
			t.Fatalf("parse %q", line)
		}
		if i >= got.Len() {
			t.Fatalf("%s: rrdtool has more points (%d: %q)", what, i, line)
		}
		if got.Time(i) != tm {
			t.Fatalf("%s: point %d time %d; rrdtool %d", what, i, got.Time(i), tm)
		}
		for j, f := range strings.Fields(vals) {
			want, err := strconv.ParseFloat(f, 64)
			if err != nil {
				want = math.NaN() // "-nan", "nan"
			}
			v := got.Value(i, j)
			if !math.IsNaN(v) {
				known++
			}
			if math.IsNaN(want) != math.IsNaN(v) || !math.IsNaN(v) && math.Abs(v-want) > 1e-9*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: point %d (t %d) %s = %v; rrdtool %v", what, i, tm, got.Names[j], v, want)
			}
		}
		i++
	}
	if i != got.Len() {
		t.Errorf("%s: %d points; rrdtool %d", what, got.Len(), i)
	}
	return known
}

// TestPVEWindowsAgainstRRDtool feeds three days of 10-second updates
// (with outages) into PVE's VM schema in rrdtool and in a Series and
// compares the fetch PVE's create_rrd_data makes for every timeframe.
func TestPVEWindowsAgainstRRDtool(t *testing.T) {
	bin, err := exec.LookPath("rrdtool")
	if err != nil {
		t.Skip("rrdtool not installed")
	}
	s := VMSchema
	var defs []string
	for _, ds := range s.ds {
		defs = append(defs, fmt.Sprintf("DS:%s:%s:%d:0:U", ds.Name, ds.Type, ds.Heartbeat))
	}
	defs = append(defs, pveArchives...)
	rnd := rand.New(rand.NewPCG(1, 2))
	start := int64(1_700_000_000)
	file := filepath.Join(t.TempDir(), "vm.rrd")
	run(t, bin, append([]string{"create", file, "--start", fmt.Sprint(start), "--step", "60"}, defs...)...)
	sr := NewSeries(s, start)
	tm := start
	var ctr [4]int64
	var recs []string
	for tm < start+3*86400 {
		tm += 10
		if rnd.IntN(2000) == 0 {
			tm += rnd.Int64N(4 * 3600) // an outage
		}
		f := []string{fmt.Sprint(tm), "4", strconv.FormatFloat(rnd.Float64(), 'g', -1, 64), "4294967296",
			fmt.Sprint(1<<30 + rnd.Int64N(1<<30)), "34359738368", "U"}
		for i := range ctr {
			ctr[i] += rnd.Int64N(1 << 20)
			f = append(f, fmt.Sprint(ctr[i]))
		}
		f = append(f, fmt.Sprint(rnd.Int64N(1<<31)))
		for range 6 {
			f = append(f, strconv.FormatFloat(rnd.Float64()*10, 'f', 2, 64))
		}
		rec := strings.Join(f, ":")
		if err := sr.UpdateRecord(rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	for i := 0; i < len(recs); i += 2000 {
		run(t, bin, append([]string{"update", file}, recs[i:min(i+2000, len(recs))]...)...)
	}
	for _, now := range []int64{tm + 1, tm + 45, tm + 3600} {
		for _, tf := range []Timeframe{Hour, Day, Week, Month, Year, Decade} {
			for _, cf := range []CF{Average, Max} {
				reso, count, _ := tf.window()
				ctime := reso * (now / reso)
				got, err := sr.Fetch(cf, ctime-reso*count, ctime-1, reso)
				if err != nil {
					t.Fatal(err)
				}
				out := run(t, bin, "fetch", file, cf.String(), "-s", fmt.Sprint(ctime-reso*count), "-e", fmt.Sprint(ctime-1), "-r", fmt.Sprint(reso))
				compareFetch(t, fmt.Sprintf("now+%d %s %s", now-tm, tf, cf), got, out)
			}
		}
	}
}
