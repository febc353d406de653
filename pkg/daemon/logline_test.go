package daemon

import (
	"bytes"
	"testing"

	"github.com/pvenode/pvenode/pkg/loginguard"
)

// TestLineRecords checks that records marked with loginguard.LineKey are
// written as bare lines (with journald's priority prefix for the journal)
// and the others as usual.
func TestLineRecords(t *testing.T) {
	for _, tt := range []struct {
		name         string
		journal      bool
		err, warning string // prefixes
	}{
		{"Terminal", false, "", ""},
		{"Journal", true, "<3>", "<4>"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := withLines(newLogger(&buf, false, true), stderrLine(&buf, tt.journal))
			line := "authentication failure; rhost=192.0.2.1 user=root@pam msg=Authentication failure"
			log.With("component", "access").Error(line, loginguard.LineKey, true)
			log.Error("two\nlines", loginguard.LineKey, true)
			log.Warn("authentication failure: invalid ticket", loginguard.LineKey, true)
			log.Info("started")
			want := tt.err + line + "\n" + tt.err + `two\nlines` + "\n" +
				tt.warning + "authentication failure: invalid ticket\n" + "level=INFO msg=started\n"
			if got := buf.String(); got != want {
				t.Errorf("log output\n%q; want\n%q", got, want)
			}
		})
	}
}
