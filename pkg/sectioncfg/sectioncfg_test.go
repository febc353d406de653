package sectioncfg_test

import (
	"os"
	"strings"
	"testing"

	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/sectioncfg"
)

// A file written by PVE is read and written back byte for byte (comments
// apart, which PVE drops too), sections of unknown types included.
func TestRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/jobs.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jobs.ParseJobs("jobs.cfg", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sections) != 3 {
		t.Fatalf("%d sections", len(cfg.Sections))
	}
	n := cfg.Get("nightly")
	if got := n.Lists["exclude-path"]; len(got) != 2 || got[1] != "/var/cache" {
		t.Fatalf("exclude-path %v", got)
	}
	want := strings.TrimPrefix(string(data), "# a comment before the first section\n")
	// PVE writes comment first, then required keys, then the rest sorted.
	want = strings.Replace(want, "\tschedule 21:00\n\tvmid 100,101\n\texclude-path /tmp\n\texclude-path /var/cache\n\tenabled 0\n",
		"\tschedule 21:00\n\tenabled 0\n\texclude-path /tmp\n\texclude-path /var/cache\n\tvmid 100,101\n", 1)
	if got := string(cfg.Marshal(jobs.JobTypes())); got != want {
		t.Fatalf("marshal:\n%s\nwant:\n%s", got, want)
	}
}

// Every problem is reported with file and line; the rest of the file is
// used as PVE uses it.
func TestErrors(t *testing.T) {
	text := "vzdump: a\n" + //1
		"\tschedule mon 12:61\n" + //2 bad calendar event
		"\tall 1\n" + //3
		"\n" + //4
		"vzdump: b\n" + //5
		"\tschedule daily\n" + //6
		"\tmode fast\n" + //7 bad enum
		"\tcompress zstd\n" + //8
		"\tcompress gzip\n" + //9 duplicate
		"\tbogus 1\n" + //10 unknown key
		"no section line\n" + //11
		"\n" +
		"vzdump: c\n" + //13
		"\tall yes\n" + //14 bad boolean
		"\tschedule daily\n\n"
	cfg, err := jobs.ParseJobs("jobs.cfg", []byte(text))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"jobs.cfg:2: section 'a': unable to parse value of 'schedule'",
		"jobs.cfg:1: skip section 'a': missing value for required option 'schedule'",
		"jobs.cfg:7: section 'b': unable to parse value of 'mode': value 'fast' does not have a value in the enumeration",
		"jobs.cfg:9: section 'b': unable to parse value of 'compress': duplicate attribute",
		"jobs.cfg:10: section 'b': ignore unknown property 'bogus'",
		"jobs.cfg:11: section 'b': ignore config line: no section line",
		"jobs.cfg:14: section 'c': unable to parse value of 'all': type check ('boolean') failed - got 'yes'",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if cfg.Get("a") != nil {
		t.Error("section a without a valid schedule was kept")
	}
	b := cfg.Get("b")
	if b == nil || b.Opts["compress"] != "zstd" || b.Opts["mode"] != "" {
		t.Errorf("section b: %+v", b)
	}
	if c := cfg.Get("c"); c == nil || c.Opts["all"] != "" {
		t.Errorf("section c: %+v", c)
	}
}

// Check is what the API runs before a write: it names the option.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"schedule": "daily", "all": "1"}, ""},
		{map[string]string{"all": "1"}, "schedule: property is missing"},
		{map[string]string{"schedule": "daily", "prune-backups": "keep-all=1,keep-last=2"}, "prune-backups: invalid format - keep-all conflicts"},
		{map[string]string{"schedule": "daily", "nope": "1"}, "nope: unknown property"},
		{map[string]string{"schedule": "every day"}, "schedule: invalid format"},
	} {
		err := sectioncfg.Check(&sectioncfg.Section{Type: "vzdump", ID: "x", Opts: tc.opts}, jobs.JobTypes())
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.opts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// A bare boolean key means 1; replication IDs are normalised; two jobs for
// one guest and target keep the first.
func TestReplicationFile(t *testing.T) {
	text := "local: 0100-01\n\ttarget pve2\n\tdisable\n\n" +
		"local: 100-2\n\ttarget pve2\n\n" +
		"local: 99-1\n\ttarget pve2\n\n" +
		"local: 101-0\n\ttarget pve3\n\tschedule */30\n\trate 50.5\n\n"
	cfg, err := jobs.ParseReplication("replication.cfg", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "guest IDs < 100 are reserved") ||
		!strings.Contains(err.Error(), "replication job for guest '100' to target 'pve2' already exists") {
		t.Fatalf("errors: %v", err)
	}
	list := jobs.ReplicationJobs(cfg)
	if len(list) != 2 || list[0].ID != "100-1" || !list[0].Disabled || list[0].Schedule != "*/15" ||
		list[1].Guest != 101 || list[1].Schedule != "*/30" {
		t.Fatalf("jobs %+v", list)
	}
	want := "local: 100-1\n\tdisable\n\ttarget pve2\n\n" +
		"local: 101-0\n\ttarget pve3\n\trate 50.5\n\tschedule */30\n\n"
	if got := string(cfg.Marshal(jobs.ReplicationTypes())); got != want {
		t.Fatalf("marshal:\n%q\nwant\n%q", got, want)
	}
}
