package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST and week tests need zones whatever the host has

	"golang.org/x/sys/unix"
)

func TestParsePruneOptions(t *testing.T) {
	tests := []struct {
		in      string
		want    PruneOptions
		printed string
		err     string // substring of the error; "" for none
	}{
		{in: "", want: PruneOptions{KeepAll: true}, printed: "keep-all=1"},
		{in: "keep-all=1", want: PruneOptions{KeepAll: true}, printed: "keep-all=1"},
		{in: "keep-all=0", want: PruneOptions{KeepAll: true}, printed: "keep-all=1"},
		{in: "keep-last=0,keep-daily=0", want: PruneOptions{KeepAll: true}, printed: "keep-all=1"},
		{in: "keep-all=yes,keep-last=0", want: PruneOptions{KeepAll: true}, printed: "keep-all=1"},
		{in: "keep-all=0,keep-last=3", want: PruneOptions{KeepLast: 3}, printed: "keep-last=3"},
		{in: "keep-last=0,keep-daily=7", want: PruneOptions{KeepDaily: 7}, printed: "keep-daily=7"},
		{
			in:      "keep-yearly=1,keep-weekly=4,keep-monthly=2,keep-last=3,keep-hourly=5,keep-daily=6",
			want:    PruneOptions{KeepLast: 3, KeepHourly: 5, KeepDaily: 6, KeepWeekly: 4, KeepMonthly: 2, KeepYearly: 1},
			printed: "keep-daily=6,keep-hourly=5,keep-last=3,keep-monthly=2,keep-weekly=4,keep-yearly=1",
		},
		{in: ",keep-last=+2,", want: PruneOptions{KeepLast: 2}, printed: "keep-last=2"},
		{in: "keep-all=1,keep-last=3", err: "keep-all cannot be set together with other options"},
		{in: "keep-all=true,keep-yearly=1", err: "keep-all cannot be set together with other options"},
		{in: "keep-last=-1", err: "keep-last: value must have a minimum value of 0"},
		{in: "keep-daily=x", err: "keep-daily: type check ('integer') failed - got 'x'"},
		{in: "keep-daily=1.5", err: "keep-daily: type check ('integer') failed"},
		{in: "keep-weekly=99999999999", err: "keep-weekly: value '99999999999' is out of range"},
		{in: "keep-all=maybe", err: "keep-all: type check ('boolean') failed - got 'maybe'"},
		{in: "keep-monthyl=1", err: "invalid key in comma-separated list property: keep-monthyl"},
		{in: "keep-last=1,keep-last=2", err: "duplicate key in comma-separated list property: keep-last"},
		{in: "keep-last", err: "value without key"},
		{in: "keep-last=", err: "missing key or value"},
		{in: "=3", err: "missing key or value"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePruneOptions(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParsePruneOptions(%q) = %+v, %v; want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePruneOptions(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.printed {
				t.Errorf("String() = %q, want %q", s, tt.printed)
			}
			if again, err := ParsePruneOptions(got.String()); err != nil || again != got {
				t.Errorf("re-parse of %q = %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestPruneOptionsKeepsAll(t *testing.T) {
	for _, tt := range []struct {
		o    PruneOptions
		want bool
	}{
		{PruneOptions{}, true},
		{PruneOptions{KeepAll: true}, true},
		{PruneOptions{KeepAll: true, KeepLast: 1}, true},
		{PruneOptions{KeepYearly: 1}, false},
		{PruneOptions{KeepLast: -1}, true},
	} {
		if got := tt.o.KeepsAll(); got != tt.want {
			t.Errorf("%+v.KeepsAll() = %v, want %v", tt.o, got, tt.want)
		}
	}
}

func FuzzParsePruneOptions(f *testing.F) {
	for _, s := range []string{"", "keep-all=1", "keep-last=3,keep-daily=7", "keep-all=1,keep-last=2", "keep-x=1", ",,=", "keep-weekly=-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParsePruneOptions(s)
		if err != nil {
			return
		}
		if o.KeepAll && o != (PruneOptions{KeepAll: true}) {
			t.Fatalf("%q parsed to keep-all with counts: %+v", s, o)
		}
		again, err := ParsePruneOptions(o.String())
		if err != nil || again != o {
			t.Fatalf("%q: String() %q re-parses to %+v, %v", s, o.String(), again, err)
		}
	})
}

// pruneStoreID is the storage of the upstream test table.
const pruneStoreID = "BackTest123"

// pruneBase is the upstream table's base time, 2020-01-01 12:18:21 UTC.
const pruneBase = 1577881101

// pruneFile is a backup file of a test storage.
type pruneFile struct {
	name      string
	protected bool
}

// newPruneDir is a dir storage in a temporary directory whose dump
// directory holds files (with .protected markers as asked).
func newPruneDir(t *testing.T, content string, files []pruneFile) (*Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	s := &Section{Type: "dir", ID: pruneStoreID, Options: map[string]string{"path": root, "content": content}}
	d, err := NewDir(s, DirOptions{LockDir: filepath.Join(t.TempDir(), "lock")})
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(root, "dump")
	if err := os.MkdirAll(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		write(t, filepath.Join(dump, f.name), "archive "+f.name)
		if f.protected {
			write(t, filepath.Join(dump, f.name+".protected"), "")
		}
	}
	return d, dump
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileCTime is the inode change time the listing reports for a file with a
// non-standard name.
func fileCTime(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ctim.Sec
}

// The lists of the upstream test (pve-storage src/test/prune_backups_test.pm).
func upstreamPruneLists() map[string][]pruneFile {
	lists := map[string][]pruneFile{}
	for _, vmid := range []int{1234, 9001} {
		for _, f := range []pruneFile{
			{name: fmt.Sprintf("vzdump-qemu-%d-2018_05_26-11_18_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_18_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_18_51.tar.zst", vmid), protected: true},
			{name: fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_19_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-qemu-%d-2020_01_01-11_18_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-qemu-%d-2020_01_01-12_18_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-lxc-%d-2020_01_01-12_18_21.tar.zst", vmid)},
			{name: fmt.Sprintf("vzdump-%d-renamed.tar.zst", vmid)},
		} {
			lists["default"] = append(lists["default"], f)
		}
	}
	lists["year1970"] = []pruneFile{
		{name: "vzdump-lxc-321-1970_01_01-00_01_23.tar.zst"},
		{name: "vzdump-lxc-321-2070_01_01-00_01_00.tar.zst"},
	}
	lists["novmid"] = []pruneFile{{name: "vzdump-lxc-novmid.tar.gz"}}
	lists["threeway"] = []pruneFile{
		{name: "vzdump-qemu-7654-2019_12_25-12_18_21.tar.zst"},
		{name: "vzdump-qemu-7654-2019_12_31-12_18_21.tar.zst"},
		{name: "vzdump-qemu-7654-2020_01_01-12_18_21.tar.zst"},
	}
	lists["weekboundary"] = []pruneFile{
		{name: "vzdump-qemu-7654-2020_12_03-12_18_21.tar.zst"},
		{name: "vzdump-qemu-7654-2020_12_04-12_18_21.tar.zst"},
		{name: "vzdump-qemu-7654-2020_12_07-12_18_21.tar.zst"},
	}
	return lists
}

// renamedCTime marks an expected entry whose ctime is the file's.
const renamedCTime = -1

// upstreamExpected is the upstream generate_expected: the entries of the
// default list for vmids (of type typ, "" for all) with marks for the five
// unprotected qemu backups, oldest first, and the lxc one.
func upstreamExpected(vmids []int, typ string, marks [6]string) []PruneEntry {
	var out []PruneEntry
	vol := func(name string) string { return pruneStoreID + ":backup/" + name }
	for _, vmid := range vmids {
		if typ == "" || typ == "qemu" {
			out = append(out,
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2018_05_26-11_18_21.tar.zst", vmid)), "qemu", vmid, pruneBase - 585*24*60*60 - 60*60, marks[0]},
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_18_21.tar.zst", vmid)), "qemu", vmid, pruneBase - 24*60*60 - 60*60, marks[1]},
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_18_51.tar.zst", vmid)), "qemu", vmid, pruneBase - 24*60*60 - 60*60 + 30, PruneProtected},
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2019_12_31-11_19_21.tar.zst", vmid)), "qemu", vmid, pruneBase - 24*60*60 - 60*60 + 60, marks[2]},
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2020_01_01-11_18_21.tar.zst", vmid)), "qemu", vmid, pruneBase - 60*60, marks[3]},
				PruneEntry{vol(fmt.Sprintf("vzdump-qemu-%d-2020_01_01-12_18_21.tar.zst", vmid)), "qemu", vmid, pruneBase, marks[4]},
			)
		}
		if typ == "" || typ == "lxc" {
			out = append(out, PruneEntry{vol(fmt.Sprintf("vzdump-lxc-%d-2020_01_01-12_18_21.tar.zst", vmid)), "lxc", vmid, pruneBase, marks[5]})
		}
		if typ == "" {
			out = append(out, PruneEntry{vol(fmt.Sprintf("vzdump-%d-renamed.tar.zst", vmid)), "unknown", vmid, renamedCTime, PruneRenamed})
		}
	}
	slices.SortFunc(out, func(a, b PruneEntry) int { return strings.Compare(a.VolID, b.VolID) })
	return out
}

// TestPruneBackupsUpstreamTable runs the cases of PVE's own test on real
// files (dry runs, times in UTC as upstream's test runs).
func TestPruneBackupsUpstreamTable(t *testing.T) {
	all := []int{1234, 9001}
	one := []int{1234}
	vol := func(name string) string { return pruneStoreID + ":backup/" + name }
	tests := []struct {
		name string
		list string // "" is "default"
		vmid int
		typ  string
		keep PruneOptions
		want []PruneEntry
	}{
		{name: "last=3, multiple IDs", keep: PruneOptions{KeepLast: 3},
			want: upstreamExpected(all, "", [6]string{"remove", "remove", "keep", "keep", "keep", "keep"})},
		{name: "weekly=2, one ID", vmid: 1234, keep: PruneOptions{KeepWeekly: 2},
			want: upstreamExpected(one, "", [6]string{"keep", "remove", "remove", "remove", "keep", "keep"})},
		{name: "daily=weekly=monthly=1, multiple IDs", keep: PruneOptions{KeepDaily: 1, KeepWeekly: 1, KeepMonthly: 1},
			want: upstreamExpected(all, "", [6]string{"keep", "remove", "keep", "remove", "keep", "keep"})},
		{name: "hourly=4, one ID", vmid: 1234, keep: PruneOptions{KeepHourly: 4},
			want: upstreamExpected(one, "", [6]string{"keep", "remove", "keep", "keep", "keep", "keep"})},
		{name: "yearly=2, multiple IDs", keep: PruneOptions{KeepYearly: 2},
			want: upstreamExpected(all, "", [6]string{"remove", "remove", "keep", "remove", "keep", "keep"})},
		{name: "last=2,hourly=2 one ID", vmid: 1234, keep: PruneOptions{KeepLast: 2, KeepHourly: 2},
			want: upstreamExpected(one, "", [6]string{"keep", "remove", "keep", "keep", "keep", "keep"})},
		{name: "last=1,monthly=2, multiple IDs", keep: PruneOptions{KeepLast: 1, KeepMonthly: 2},
			want: upstreamExpected(all, "", [6]string{"keep", "remove", "keep", "remove", "keep", "keep"})},
		{name: "monthly=3, one ID", vmid: 1234, keep: PruneOptions{KeepMonthly: 3},
			want: upstreamExpected(one, "", [6]string{"keep", "remove", "keep", "remove", "keep", "keep"})},
		{name: "last=daily=weekly=1, multiple IDs", keep: PruneOptions{KeepLast: 1, KeepDaily: 1, KeepWeekly: 1},
			want: upstreamExpected(all, "", [6]string{"keep", "remove", "keep", "remove", "keep", "keep"})},
		{name: "daily=2, one ID", vmid: 1234, keep: PruneOptions{KeepDaily: 2},
			want: upstreamExpected(one, "", [6]string{"remove", "remove", "keep", "remove", "keep", "keep"})},
		{name: "weekly=monthly=1, multiple IDs", keep: PruneOptions{KeepWeekly: 1, KeepMonthly: 1},
			want: upstreamExpected(all, "", [6]string{"keep", "remove", "remove", "remove", "keep", "keep"})},
		{name: "weekly=yearly=1, one ID", vmid: 1234, keep: PruneOptions{KeepWeekly: 1, KeepYearly: 1},
			want: upstreamExpected(one, "", [6]string{"keep", "remove", "remove", "remove", "keep", "keep"})},
		{name: "weekly=yearly=1, one ID, type qemu", vmid: 1234, typ: "qemu", keep: PruneOptions{KeepWeekly: 1, KeepYearly: 1},
			want: upstreamExpected(one, "qemu", [6]string{"keep", "remove", "remove", "remove", "keep", ""})},
		{name: "last=1, one ID, type lxc", vmid: 1234, typ: "lxc", keep: PruneOptions{KeepLast: 1},
			want: upstreamExpected(one, "lxc", [6]string{"", "", "", "", "", "keep"})},
		{name: "yearly=1, year before 2000", list: "year1970", keep: PruneOptions{KeepYearly: 1},
			want: []PruneEntry{
				{vol("vzdump-lxc-321-1970_01_01-00_01_23.tar.zst"), "lxc", 321, 83, "remove"},
				{vol("vzdump-lxc-321-2070_01_01-00_01_00.tar.zst"), "lxc", 321, 60*60*24*(365*100+25) + 60, "keep"},
			}},
		{name: "last=1, no ID", list: "novmid", keep: PruneOptions{KeepLast: 1},
			want: []PruneEntry{{vol("vzdump-lxc-novmid.tar.gz"), "lxc", 0, renamedCTime, "renamed"}}},
		{name: "all missing, multiple IDs", keep: PruneOptions{},
			want: upstreamExpected(all, "", [6]string{"keep", "keep", "keep", "keep", "keep", "keep"})},
		{name: "keep-all, multiple IDs", keep: PruneOptions{KeepAll: true},
			want: upstreamExpected(all, "", [6]string{"keep", "keep", "keep", "keep", "keep", "keep"})},
		{name: "daily=weekly=monthly=1", list: "threeway", keep: PruneOptions{KeepDaily: 1, KeepWeekly: 1, KeepMonthly: 1},
			want: []PruneEntry{
				{vol("vzdump-qemu-7654-2019_12_25-12_18_21.tar.zst"), "qemu", 7654, pruneBase - 7*24*60*60, "keep"},
				// the month is already covered by the backup keep-weekly kept
				{vol("vzdump-qemu-7654-2019_12_31-12_18_21.tar.zst"), "qemu", 7654, pruneBase - 24*60*60, "remove"},
				{vol("vzdump-qemu-7654-2020_01_01-12_18_21.tar.zst"), "qemu", 7654, pruneBase, "keep"},
			}},
		{name: "daily=weekly=1,weekboundary", list: "weekboundary", keep: PruneOptions{KeepDaily: 1, KeepWeekly: 1},
			want: []PruneEntry{
				{vol("vzdump-qemu-7654-2020_12_03-12_18_21.tar.zst"), "qemu", 7654, pruneBase + (366-31+2)*24*60*60, "remove"},
				{vol("vzdump-qemu-7654-2020_12_04-12_18_21.tar.zst"), "qemu", 7654, pruneBase + (366-31+3)*24*60*60, "keep"},
				{vol("vzdump-qemu-7654-2020_12_07-12_18_21.tar.zst"), "qemu", 7654, pruneBase + (366-31+6)*24*60*60, "keep"},
			}},
	}
	lists := upstreamPruneLists()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := tt.list
			if list == "" {
				list = "default"
			}
			d, dump := newPruneDir(t, "backup", lists[list])
			got, err := d.PruneBackups(context.Background(), tt.keep, tt.typ, tt.vmid, true, time.UTC, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tt.want)
			for i := range want {
				if want[i].CTime == renamedCTime {
					want[i].CTime = fileCTime(t, filepath.Join(dump, strings.TrimPrefix(want[i].VolID, pruneStoreID+":backup/")))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", fmtEntries(got), fmtEntries(want))
			}
			// A dry run removes nothing.
			if ents, _ := os.ReadDir(dump); len(ents) != len(lists[list])+countProtected(lists[list]) {
				t.Errorf("dry run changed the dump directory: %d entries", len(ents))
			}
		})
	}
}

func countProtected(files []pruneFile) int {
	n := 0
	for _, f := range files {
		if f.protected {
			n++
		}
	}
	return n
}

func fmtEntries(l []PruneEntry) string {
	var b strings.Builder
	for _, e := range l {
		fmt.Fprintf(&b, "  %s %s %d %d %s\n", e.VolID, e.Type, e.VMID, e.CTime, e.Mark)
	}
	return b.String()
}

// at is a PruneEntry of a group at a wall-clock time in loc.
func at(loc *time.Location, ymdhms string) PruneEntry {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", ymdhms, loc)
	if err != nil {
		panic(err)
	}
	return PruneEntry{VolID: ymdhms, Type: "qemu", VMID: 100, CTime: t.Unix()}
}

func marks(l []PruneEntry) []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Mark
	}
	return out
}

func TestMarkBackupGroup(t *testing.T) {
	utc := time.UTC
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// fallBack is the night Vienna goes from CEST back to CET (03:00 CEST
	// becomes 02:00 CET, 2020-10-25 01:00 UTC): the hour 02 happens twice
	// and the day has 25 hours.
	fallBack := func(utcClock string) PruneEntry {
		e := at(utc, utcClock)
		e.VolID = time.Unix(e.CTime, 0).In(vienna).Format("2006-01-02 15:04 MST")
		return e
	}
	tests := []struct {
		name string
		loc  *time.Location
		keep PruneOptions
		list []PruneEntry
		want []string
	}{
		{
			name: "keep-all keeps, also what was marked remove, and leaves other marks",
			loc:  utc, keep: PruneOptions{KeepAll: true},
			list: []PruneEntry{at(utc, "2020-01-01 00:00:00"), {CTime: 5, Mark: PruneRemove}, {CTime: 6, Mark: PruneProtected}, {CTime: 7, Mark: PruneRenamed}},
			want: []string{"keep", "keep", "protected", "renamed"},
		},
		{
			name: "no positive option keeps all",
			loc:  utc, keep: PruneOptions{KeepLast: 0},
			list: []PruneEntry{at(utc, "2020-01-01 00:00:00"), at(utc, "2020-01-02 00:00:00")},
			want: []string{"keep", "keep"},
		},
		{
			name: "protected entries take no slot and keep their mark",
			loc:  utc, keep: PruneOptions{KeepLast: 2},
			list: []PruneEntry{
				at(utc, "2020-01-01 00:00:00"), at(utc, "2020-01-02 00:00:00"),
				func() PruneEntry { e := at(utc, "2020-01-03 00:00:00"); e.Mark = PruneProtected; return e }(),
				at(utc, "2020-01-04 00:00:00"),
			},
			want: []string{"remove", "keep", "protected", "keep"},
		},
		{
			name: "input order does not matter, newest first",
			loc:  utc, keep: PruneOptions{KeepDaily: 2},
			list: []PruneEntry{at(utc, "2020-01-02 10:00:00"), at(utc, "2020-01-01 10:00:00"), at(utc, "2020-01-02 12:00:00"), at(utc, "2019-12-31 10:00:00")},
			want: []string{"remove", "keep", "keep", "remove"},
		},
		{
			name: "DST fall-back: the repeated hour 02 is one hourly bucket",
			loc:  vienna, keep: PruneOptions{KeepHourly: 2},
			list: []PruneEntry{
				fallBack("2020-10-24 23:30:00"), // 01:30 CEST
				fallBack("2020-10-25 00:10:00"), // 02:10 CEST
				fallBack("2020-10-25 01:50:00"), // 02:50 CET
			},
			want: []string{"keep", "remove", "keep"},
		},
		{
			name: "same times in UTC are three hours",
			loc:  utc, keep: PruneOptions{KeepHourly: 2},
			list: []PruneEntry{fallBack("2020-10-24 23:30:00"), fallBack("2020-10-25 00:10:00"), fallBack("2020-10-25 01:50:00")},
			want: []string{"remove", "keep", "keep"},
		},
		{
			name: "DST fall-back: the 25-hour day is one daily bucket",
			loc:  vienna, keep: PruneOptions{KeepDaily: 2},
			list: []PruneEntry{
				fallBack("2020-10-23 22:30:00"), // 24th 00:30 CEST
				fallBack("2020-10-24 22:30:00"), // 25th 00:30 CEST
				fallBack("2020-10-25 22:30:00"), // 25th 23:30 CET
			},
			want: []string{"keep", "remove", "keep"},
		},
		{
			name: "same times in UTC are three days",
			loc:  utc, keep: PruneOptions{KeepDaily: 2},
			list: []PruneEntry{fallBack("2020-10-23 22:30:00"), fallBack("2020-10-24 22:30:00"), fallBack("2020-10-25 22:30:00")},
			want: []string{"remove", "keep", "keep"},
		},
		{
			name: "ISO week-year: 2019-12-30 is in week 1 of 2020, 2019-12-29 in week 52 of 2019",
			loc:  utc, keep: PruneOptions{KeepWeekly: 2},
			list: []PruneEntry{at(utc, "2019-12-29 12:00:00"), at(utc, "2019-12-30 12:00:00"), at(utc, "2020-01-01 12:00:00")},
			want: []string{"keep", "remove", "keep"},
		},
		{
			name: "ISO week-year: 2020-12-31 and 2021-01-03 are both week 53 of 2020",
			loc:  utc, keep: PruneOptions{KeepWeekly: 2},
			list: []PruneEntry{at(utc, "2020-12-27 12:00:00"), at(utc, "2020-12-31 12:00:00"), at(utc, "2021-01-03 12:00:00"), at(utc, "2021-01-04 12:00:00")},
			want: []string{"remove", "remove", "keep", "keep"},
		},
		{
			name: "week buckets in local time: Monday 02:00 UTC is still Sunday in New York",
			loc:  newYork, keep: PruneOptions{KeepWeekly: 1},
			list: []PruneEntry{at(utc, "2021-01-03 12:00:00"), at(utc, "2021-01-04 02:00:00")},
			want: []string{"remove", "keep"},
		},
		{
			name: "same in UTC: two weeks",
			loc:  utc, keep: PruneOptions{KeepWeekly: 2},
			list: []PruneEntry{at(utc, "2021-01-03 12:00:00"), at(utc, "2021-01-04 02:00:00")},
			want: []string{"keep", "keep"},
		},
		{
			name: "monthly and yearly in local time",
			loc:  newYork, keep: PruneOptions{KeepMonthly: 1, KeepYearly: 1},
			list: []PruneEntry{at(utc, "2020-12-15 12:00:00"), at(utc, "2021-01-01 03:00:00"), at(utc, "2021-01-02 12:00:00")},
			// 2021-01-01 03:00 UTC is 2020-12-31 in New York: keep-monthly
			// takes January 2021 and stops, keep-yearly then takes 2020 with
			// its newest backup (in UTC that one would be January's).
			want: []string{"remove", "keep", "keep"},
		},
		{
			name: "a bucket taken in this pass removes its older entries, later options cannot rescue them",
			loc:  utc, keep: PruneOptions{KeepDaily: 1, KeepYearly: 5},
			list: []PruneEntry{at(utc, "2020-06-01 10:00:00"), at(utc, "2020-06-01 12:00:00"), at(utc, "2019-01-01 00:00:00")},
			want: []string{"remove", "keep", "keep"},
		},
		{
			name: "stop after N new buckets; the rest is removed",
			loc:  utc, keep: PruneOptions{KeepLast: 1, KeepMonthly: 1},
			list: []PruneEntry{at(utc, "2020-01-01 00:00:00"), at(utc, "2020-02-01 00:00:00"), at(utc, "2020-03-01 00:00:00"), at(utc, "2020-03-02 00:00:00")},
			want: []string{"remove", "keep", "remove", "keep"},
		},
		{
			name: "equal ctimes keep input order",
			loc:  utc, keep: PruneOptions{KeepLast: 1},
			list: []PruneEntry{at(utc, "2020-01-01 00:00:00"), at(utc, "2020-01-01 00:00:00")},
			want: []string{"keep", "remove"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := slices.Clone(tt.list)
			MarkBackupGroup(list, tt.keep, tt.loc)
			if got := marks(list); !slices.Equal(got, tt.want) {
				t.Errorf("marks %v, want %v\n%s", got, tt.want, fmtEntries(list))
			}
		})
	}
}

func TestParseArchiveName(t *testing.T) {
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ok, std bool
		typ     string
		vmid    int
		ctime   int64
		logName string
	}{
		{"vzdump-qemu-100-2020_01_01-12_00_00.vma.zst", true, true, "qemu", 100, 1577898000, "vzdump-qemu-100-2020_01_01-12_00_00.log"},
		{"vzdump-lxc-123456789-2020_07_01-12_00_00.tar", true, true, "lxc", 123456789, 1593619200, "vzdump-lxc-123456789-2020_07_01-12_00_00.log"},
		{"vzdump-openvz-101-2020_01_01-12_00_00.tgz", true, true, "openvz", 101, 1577898000, "vzdump-openvz-101-2020_01_01-12_00_00.log"},
		{"vzdump-qemu-100-2020_01_01-12_00_00.vma.lzo", true, true, "qemu", 100, 1577898000, "vzdump-qemu-100-2020_01_01-12_00_00.log"},
		{"vzdump-qemu-100-renamed.vma.zst", true, false, "qemu", 0, 0, ""},
		{"vzdump-qemu-99-2020_01_01-12_00_00.vma", true, false, "qemu", 0, 0, ""},
		{"vzdump-qemu-100-2020_01_01-12_00_00.extra.vma", true, false, "qemu", 0, 0, ""},
		{"vzdump-qemu-100-2020_01_01-12_00_00.vma.xz", false, false, "", 0, 0, ""},
		{"vzdump-100-2020_01_01-12_00_00.vma", false, false, "", 0, 0, ""},
		{"backup.tar", false, false, "", 0, 0, ""},
	}
	for _, tt := range tests {
		info, ok := parseArchiveName(tt.name, newYork)
		if ok != tt.ok || info.std != tt.std || info.typ != tt.typ || info.vmid != tt.vmid || info.ctime != tt.ctime || info.logName != tt.logName {
			t.Errorf("parseArchiveName(%q) = %+v, %v", tt.name, info, ok)
		}
	}
}

// TestPruneBackupsRemoves runs a real prune: the backups marked remove go
// with their .log and .notes files; protected ones, renamed ones and other
// files stay.
func TestPruneBackupsRemoves(t *testing.T) {
	files := []pruneFile{
		{name: "vzdump-qemu-100-2020_01_01-00_00_00.vma.zst"},
		{name: "vzdump-qemu-100-2020_01_02-00_00_00.vma.zst", protected: true},
		{name: "vzdump-qemu-100-2020_01_03-00_00_00.vma.zst"},
		{name: "vzdump-qemu-100-2020_01_04-00_00_00.vma.zst"},
		{name: "vzdump-qemu-100-2020_01_05-00_00_00.vma.zst"},
		{name: "vzdump-qemu-100-oldcopy.vma.zst"},
		{name: "vzdump-lxc-200-2020_01_01-00_00_00.tar.gz"},
		{name: "vzdump-lxc-200-2020_01_02-00_00_00.tar.gz"},
	}
	d, dump := newPruneDir(t, "backup,iso", files)
	for _, f := range files {
		base := strings.TrimSuffix(strings.TrimSuffix(f.name, ".zst"), ".gz")
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".vma"), ".tar")
		write(t, filepath.Join(dump, base+".log"), "log")
		write(t, filepath.Join(dump, f.name+".notes"), "notes")
	}
	write(t, filepath.Join(dump, "unrelated.txt"), "x")
	var log []string
	logf := func(format string, a ...any) { log = append(log, fmt.Sprintf(format, a...)) }

	got, err := d.PruneBackups(context.Background(), PruneOptions{KeepLast: 2}, "qemu", 0, false, time.UTC, logf)
	if err != nil {
		t.Fatal(err)
	}
	wantMarks := map[string]string{
		"vzdump-qemu-100-2020_01_01-00_00_00.vma.zst": "remove",
		"vzdump-qemu-100-2020_01_02-00_00_00.vma.zst": "protected",
		"vzdump-qemu-100-2020_01_03-00_00_00.vma.zst": "remove",
		"vzdump-qemu-100-2020_01_04-00_00_00.vma.zst": "keep",
		"vzdump-qemu-100-2020_01_05-00_00_00.vma.zst": "keep",
		"vzdump-qemu-100-oldcopy.vma.zst":             "renamed",
	}
	if len(got) != len(wantMarks) {
		t.Errorf("got %d entries:\n%s", len(got), fmtEntries(got))
	}
	for _, e := range got {
		if w := wantMarks[strings.TrimPrefix(e.VolID, pruneStoreID+":backup/")]; e.Mark != w {
			t.Errorf("%s marked %q, want %q", e.VolID, e.Mark, w)
		}
	}
	wantLog := []string{
		"removing backup 'BackTest123:backup/vzdump-qemu-100-2020_01_01-00_00_00.vma.zst'",
		"removing backup 'BackTest123:backup/vzdump-qemu-100-2020_01_03-00_00_00.vma.zst'",
	}
	if !slices.Equal(log, wantLog) {
		t.Errorf("log %q, want %q", log, wantLog)
	}
	var left []string
	ents, _ := os.ReadDir(dump)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	for _, gone := range []string{
		"vzdump-qemu-100-2020_01_01-00_00_00.vma.zst", "vzdump-qemu-100-2020_01_01-00_00_00.vma.zst.notes", "vzdump-qemu-100-2020_01_01-00_00_00.log",
		"vzdump-qemu-100-2020_01_03-00_00_00.vma.zst", "vzdump-qemu-100-2020_01_03-00_00_00.vma.zst.notes", "vzdump-qemu-100-2020_01_03-00_00_00.log",
	} {
		if slices.Contains(left, gone) {
			t.Errorf("%s not removed", gone)
		}
	}
	if want := 8*3 + 1 + 1 - 6; len(left) != want {
		t.Errorf("%d files left, want %d: %v", len(left), want, left)
	}
	for _, kept := range []string{
		"vzdump-qemu-100-2020_01_02-00_00_00.vma.zst", "vzdump-qemu-100-2020_01_02-00_00_00.vma.zst.protected",
		"vzdump-qemu-100-oldcopy.vma.zst", "vzdump-lxc-200-2020_01_01-00_00_00.tar.gz", "unrelated.txt",
	} {
		if !slices.Contains(left, kept) {
			t.Errorf("%s removed", kept)
		}
	}

	// A second run finds nothing more to remove.
	log = nil
	if _, err := d.PruneBackups(context.Background(), PruneOptions{KeepLast: 2}, "qemu", 100, false, time.UTC, logf); err != nil || len(log) != 0 {
		t.Errorf("second run: %v, log %q", err, log)
	}
	// lxc 200 with keep-last=1: the older one goes.
	got, err = d.PruneBackups(context.Background(), PruneOptions{KeepLast: 1}, "", 200, false, time.UTC, logf)
	if err != nil || len(got) != 2 || got[0].Mark != "remove" || got[1].Mark != "keep" {
		t.Errorf("lxc 200: %v\n%s", err, fmtEntries(got))
	}
	if _, err := os.Stat(filepath.Join(dump, "vzdump-lxc-200-2020_01_01-00_00_00.tar.gz")); !os.IsNotExist(err) {
		t.Errorf("lxc backup not removed: %v", err)
	}
}

// TestPruneBackupsFailure: a backup that cannot be removed (its directory
// entry is a non-empty directory) is logged, the others are still removed,
// and the run fails.
func TestPruneBackupsFailure(t *testing.T) {
	d, dump := newPruneDir(t, "backup", []pruneFile{
		{name: "vzdump-qemu-100-2020_01_01-00_00_00.vma"},
		{name: "vzdump-qemu-100-2020_01_03-00_00_00.vma"},
	})
	// A side file that cannot be removed is only a warning.
	if err := os.Mkdir(filepath.Join(dump, "vzdump-qemu-100-2020_01_01-00_00_00.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dump, "vzdump-qemu-100-2020_01_01-00_00_00.log", "x"), "")
	var log []string
	logf := func(format string, a ...any) { log = append(log, fmt.Sprintf(format, a...)) }
	if _, err := d.PruneBackups(context.Background(), PruneOptions{KeepLast: 1}, "", 0, false, time.UTC, logf); err != nil {
		t.Fatalf("prune with a stuck log file: %v", err)
	}
	if len(log) != 2 || !strings.HasPrefix(log[1], "WARN: Removing log file failed: ") {
		t.Errorf("log %q", log)
	}
	if _, err := os.Stat(filepath.Join(dump, "vzdump-qemu-100-2020_01_01-00_00_00.vma")); !os.IsNotExist(err) {
		t.Errorf("archive not removed: %v", err)
	}

	// The dump directory read-only: nothing can be removed.
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	write(t, filepath.Join(dump, "vzdump-qemu-100-2020_01_02-00_00_00.vma"), "")
	if err := os.Chmod(dump, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dump, 0o755) })
	log = nil
	_, err := d.PruneBackups(context.Background(), PruneOptions{KeepLast: 1}, "", 0, false, time.UTC, logf)
	if err == nil || err.Error() != "error pruning backups - check log" {
		t.Errorf("err %v", err)
	}
	if len(log) != 2 || !strings.HasPrefix(log[1], "error when removing backup 'BackTest123:backup/vzdump-qemu-100-2020_01_02-00_00_00.vma' - removing archive ") {
		t.Errorf("log %q", log)
	}
}

func TestPruneBackupsRefused(t *testing.T) {
	d, _ := newPruneDir(t, "iso", nil)
	_, err := d.PruneBackups(context.Background(), PruneOptions{KeepLast: 1}, "", 0, true, nil, nil)
	if err == nil || err.Error() != "storage 'BackTest123' does not support backups" {
		t.Errorf("err %v", err)
	}
}

// TestPruneBackupsLocalTime: the time in a standard name is local time in
// the location given.
func TestPruneBackupsLocalTime(t *testing.T) {
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newPruneDir(t, "backup", []pruneFile{{name: "vzdump-qemu-100-2020_01_01-12_00_00.vma"}})
	got, err := d.PruneBackups(context.Background(), PruneOptions{}, "", 0, true, newYork, nil)
	if err != nil || len(got) != 1 || got[0].CTime != 1577898000 || got[0].Mark != "keep" || got[0].VMID != 100 || got[0].Type != "qemu" {
		t.Errorf("%v\n%s", err, fmtEntries(got))
	}
}
