package daemon

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCheckStatus(t *testing.T) {
	www := &account{name: "www-data", uid: 33, gid: 33, groups: []int{33}}
	const good = "Name:\ttestd\nUid:\t33\t33\t33\t33\nGid:\t33\t33\t33\t33\nGroups:\t33 \n" +
		"CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
	for _, tt := range []struct {
		name, status string
		want         string // substring of the error; "" = ok
	}{
		{"dropped", good, ""},
		{"saved uid kept", strings.Replace(good, "Uid:\t33\t33\t33\t33", "Uid:\t33\t33\t0\t33", 1), "Uid is"},
		{"fs gid kept", strings.Replace(good, "Gid:\t33\t33\t33\t33", "Gid:\t33\t33\t33\t0", 1), "Gid is"},
		{"root group kept", strings.Replace(good, "Groups:\t33 ", "Groups:\t0 33 ", 1), "groups are [0 33]"},
		{"no groups", strings.Replace(good, "Groups:\t33 ", "Groups:\t", 1), "groups are []"},
		{"caps kept", strings.Replace(good, "CapEff:\t0000000000000000", "CapEff:\t000001ffffffffff", 1), "CapEff is"},
		{"short uid line", strings.Replace(good, "Uid:\t33\t33\t33\t33", "Uid:\t33\t33", 1), "want 4 ids"},
		{"no cap lines", "Uid:\t33\t33\t33\t33\nGid:\t33\t33\t33\t33\nGroups:\t33\n", "no CapPrm line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkStatus([]byte(tt.status), www)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkStatus = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkStatus = %v; want error containing %q", err, tt.want)
			}
		})
	}
}

func TestLookupAccountRoot(t *testing.T) {
	a, err := lookupAccount("root")
	if err != nil {
		t.Skipf("no root entry in the user database: %v", err)
	}
	if a.uid != 0 || a.gid != 0 || !slices.Contains(a.groups, 0) {
		t.Errorf("lookupAccount(root) = %+v; want uid 0, gid 0, groups with 0", a)
	}
	if _, err := lookupAccount("no-such-user-pvenode"); err == nil {
		t.Error("lookupAccount(no-such-user-pvenode) = nil error; want one")
	}
}

func TestChildArgs(t *testing.T) {
	fs := pflag.NewFlagSet("start", pflag.ContinueOnError)
	var o startOpts
	addStartFlags(fs, &o, Spec{Flags: func(fs *pflag.FlagSet) {
		fs.String("port-file", "", "")
		fs.StringSlice("listen", nil, "")
		fs.Int("workers", 3, "")
	}})
	fs.String("prefix", "", "")
	fs.Int(readyFDFlag, 0, "")
	args := []string{"--prefix", "/tmp/p", "-f", "--debug", "--listen=a,b", "--port-file", "x y", "--ready-fd=7"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	got := childArgs(fs)
	want := []string{"start", "--foreground", "--ready-fd=3", "--listen=a", "--listen=b", "--port-file=x y", "--prefix=/tmp/p"}
	if !slices.Equal(got, want) {
		t.Errorf("childArgs(%q) = %q; want %q", args, got, want)
	}
}

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "testd", "testd.pid")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	if pid, err := runningPID(path); pid != 0 || err != nil {
		t.Errorf("runningPID(missing) = %d, %v; want 0, nil", pid, err)
	}
	pf, err := lockPIDFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file holds %q; want our pid and a newline", data)
	}
	if pid, err := runningPID(path); pid != os.Getpid() || err != nil {
		t.Errorf("runningPID(locked) = %d, %v; want %d", pid, err, os.Getpid())
	}
	// OFD locks conflict within one process too, like a second daemon.
	_, err = lockPIDFile(path, nil)
	var are *alreadyRunningError
	if !errors.As(err, &are) || are.pid != os.Getpid() {
		t.Errorf("second lockPIDFile = %v; want already running with pid %d", err, os.Getpid())
	}
	pf.release(log)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after release: %v; want removed", err)
	}

	// A leftover file without a lock is stale: not running, and start takes it over.
	if err := os.WriteFile(path, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := runningPID(path); pid != 0 || err != nil {
		t.Errorf("runningPID(stale) = %d, %v; want 0, nil", pid, err)
	}
	pf, err = lockPIDFile(path, nil)
	if err != nil {
		t.Fatalf("lockPIDFile over a stale file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file holds %q; want our pid (stale content replaced)", data)
	}
	// release leaves alone a file that is no longer ours.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf.release(log)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("release removed a pid file it did not own: %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	for _, tt := range []struct {
		name          string
		debug, noTime bool
		wantTime      bool
		wantDebug     bool
	}{
		{"terminal", false, false, true, false},
		{"journal", false, true, false, false},
		{"debug", true, false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(&buf, tt.debug, tt.noTime)
			log.Debug("dbg")
			log.Info("started", "pid", 1)
			out := buf.String()
			if got := strings.Contains(out, "time="); got != tt.wantTime {
				t.Errorf("time= in %q: %v; want %v", out, got, tt.wantTime)
			}
			if got := strings.Contains(out, "msg=dbg"); got != tt.wantDebug {
				t.Errorf("debug record in %q: %v; want %v", out, got, tt.wantDebug)
			}
			if !strings.Contains(out, "level=INFO msg=started pid=1") {
				t.Errorf("log %q lacks the info record", out)
			}
		})
	}
}

func TestStderrIsJournal(t *testing.T) {
	for _, v := range []string{"", "garbage", "1:", "0:0"} {
		if stderrIsJournal(v) {
			t.Errorf("stderrIsJournal(%q) = true; want false", v)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{}, "empty name"},
		{"no constructor", Spec{Name: "x"}, "no New function"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate() = %v; want %q", err, tt.want)
			}
		})
	}
	if got := (Spec{}).stopTimeout(); got != DefaultStopTimeout {
		t.Errorf("default stopTimeout = %v; want %v", got, DefaultStopTimeout)
	}
}
