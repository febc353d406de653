package tasks

import (
	"errors"
	"testing"
)

func TestParseUPID(t *testing.T) {
	tests := []struct {
		in   string
		want UPID
		bad  bool
	}{
		// Samples from pve-common test/upid-test.pl.
		{in: "UPID:example-node:0000C346:165A0CE4:68D7279C:aptupdate::root@pam:",
			want: UPID{Node: "example-node", PID: 49990, PStart: 375000292, StartTime: 1758930844, Type: "aptupdate", User: "root@pam"}},
		{in: "UPID:example-node:000934AF:0D015579:68BF3A41:hastart:100:root@pam:",
			want: UPID{Node: "example-node", PID: 603311, PStart: 218191225, StartTime: 1757362753, Type: "hastart", ID: "100", User: "root@pam"}},
		{in: "UPID:example-node:000934AF:0D015579:68BF3A41:vzdump:100:91a1da29-a47d-11f0-84e0-fafbfc944d00@pam!some-token:",
			want: UPID{Node: "example-node", PID: 603311, PStart: 218191225, StartTime: 1757362753, Type: "vzdump", ID: "100", User: "91a1da29-a47d-11f0-84e0-fafbfc944d00@pam!some-token"}},
		{in: "UPID:example-node:000934AF:FFFFFFFFF:68BF3A41:fake-but-valid-type:100:root@pam:",
			want: UPID{Node: "example-node", PID: 603311, PStart: 68719476735, StartTime: 1757362753, Type: "fake-but-valid-type", ID: "100", User: "root@pam"}},
		{in: "UPID:example-node:000934AF:0D015579:68BF3A41:broken type string:100:root@pam:", bad: true},
		{in: "invalid garbage", bad: true},
		// Further rules of the decode pattern.
		{in: "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0:qmstart:100:root@pam", bad: true},  // no trailing colon
		{in: "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0:qmstart:1/0:root@pam:", bad: true}, // slash in id
		{in: "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0::100:root@pam:", bad: true},        // empty type
		{in: "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0:qmstart:100::", bad: true},         // empty user
		{in: "UPID:-pve:0003A2F1:00B4C5D6:66C8E0F0:qmstart:100:root@pam:", bad: true}, // node
		{in: "UPID:pve1:3A2F1:00B4C5D6:66C8E0F0:qmstart:100:root@pam:", bad: true},    // short pid
		{in: "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0:qmstart:100:root@pam:\n", bad: true},
		{in: "UPID:pve1:0003a2f1:00b4c5d6:66c8e0f0:qmstart:100:root@pam:",
			want: UPID{Node: "pve1", PID: 0x3A2F1, PStart: 0xB4C5D6, StartTime: 0x66C8E0F0, Type: "qmstart", ID: "100", User: "root@pam"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.bad {
			if err == nil || !errors.Is(err, ErrInvalidUPID) {
				t.Errorf("Parse(%q) = %+v, %v; want ErrInvalidUPID", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in && tt.in[14] != 'a' { // the lower-case sample re-encodes in upper case
			t.Errorf("String() = %q, want %q", s, tt.in)
		}
	}
	if s := (UPID{Node: "pve1", PID: 0x3A2F1, PStart: 0xB4C5D6, StartTime: 0x66C8E0F0, Type: "qmstart", ID: "100", User: "root@pam"}).String(); s != "UPID:pve1:0003A2F1:00B4C5D6:66C8E0F0:qmstart:100:root@pam:" {
		t.Errorf("String() = %q", s)
	}
}

func TestLogPath(t *testing.T) {
	for in, want := range map[string]string{
		"UPID:example-node:0000C346:165A0CE4:68D7279C:aptupdate::root@pam:": "/r/C/UPID:example-node:0000C346:165A0CE4:68D7279C:aptupdate::root@pam:",
		"UPID:n:0000C346:165A0CE4:68d7279f:a::root@pam:":                    "/r/f/UPID:n:0000C346:165A0CE4:68d7279f:a::root@pam:",
	} {
		if got := logPath("/r", in); got != want {
			t.Errorf("logPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusHelpers(t *testing.T) {
	for line, want := range map[string]string{
		"TASK OK":                "OK",
		"TASK ERROR: Some error": "Some error",
		"TASK WARNINGS: 42":      "WARNINGS: 42",
		"TASK ERROR: ":           StatusUnexpected,
		"":                       StatusUnexpected,
		"Some log line":          StatusUnexpected,
		"TASK WARNINGS: x":       StatusUnexpected,
	} {
		if got := statusFromLine(line); got != want {
			t.Errorf("statusFromLine(%q) = %q, want %q", line, got, want)
		}
	}
	for status, want := range map[string]string{
		"OK": "ok", "WARNINGS: 3": "warning", "": "unknown", StatusUnexpected: "unknown",
		"received interrupt": "error", "WARNINGS: x": "error",
	} {
		if got := StatusType(status); got != want {
			t.Errorf("StatusType(%q) = %q, want %q", status, got, want)
		}
		if IsErrorStatus(status) != (want != "ok" && want != "warning") {
			t.Errorf("IsErrorStatus(%q) wrong", status)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("UPID:example-node:0000C346:165A0CE4:68D7279C:aptupdate::root@pam:")
	f.Add("UPID:n:000934AF:FFFFFFFFF:68BF3A41:t:100:u@pam!tok:")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		u2, err := Parse(u.String())
		if err != nil || u2 != u {
			t.Fatalf("round trip of %q: %+v, %v", s, u2, err)
		}
	})
}
