package spiceticket

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

const secret = "c2VjcmV0LWNzcmYta2V5LWZvci10ZXN0cw"

func forge(plain string) string {
	h := sha1.Sum([]byte(plain + secret))
	return plain + "::" + hex.EncodeToString(h[:])
}

func TestAssembleFormat(t *testing.T) {
	now := time.Unix(0x66c8e0f0, 0)
	tk, pw := Assemble(secret, "root@pam", 100, "PVE1", 61000, now)
	wantPlain := "pvespiceproxy:66c8e0f0:100:pve1:61000"
	if !strings.HasPrefix(tk, wantPlain+"::") {
		t.Fatalf("ticket %q; want prefix %q", tk, wantPlain+"::")
	}
	if tk != forge(wantPlain) {
		t.Errorf("ticket %q; want %q (sha1 of plain and secret)", tk, forge(wantPlain))
	}
	if len(pw) != 40 || strings.ToLower(pw) != pw {
		t.Errorf("password %q; want 40 lowercase hex digits", pw)
	}
	if _, pw2 := Assemble(secret, "root@pam", 100, "PVE1", 61000, now); pw2 == pw {
		t.Errorf("two passwords are equal: %q", pw)
	}
	old, _ := Assemble(secret, "root@pam", 100, "pve1", 0, now)
	if old != forge("pvespiceproxy:66c8e0f0:100:pve1") {
		t.Errorf("old-form ticket %q", old)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tk := func(vmid int, node string, port int, t time.Time) string {
		s, _ := Assemble(secret, "root@pam", vmid, node, port, t)
		return s
	}
	ts := strconv.FormatInt(now.Unix(), 16)
	for _, tt := range []struct {
		name     string
		host     string
		wantVMID int
		wantNode string
		wantPort int
	}{
		{"valid", tk(100, "pve1", 61000, now) + ":61000", 100, "pve1", 61000},
		{"valid node lowercased", tk(100, "PVE1", 61000, now) + ":61000", 100, "pve1", 61000},
		{"valid 39 s old", tk(100, "pve1", 61000, at(-39*time.Second)) + ":61000", 100, "pve1", 61000},
		{"valid 19 s ahead", tk(100, "pve1", 61000, at(19*time.Second)) + ":61000", 100, "pve1", 61000},
		{"old form", tk(101, "pve2", 0, now) + ":61005", 101, "pve2", 61005},
		{"expired 40 s", tk(100, "pve1", 61000, at(-40*time.Second)) + ":61000", 0, "", 0},
		{"future 20 s", tk(100, "pve1", 61000, at(20*time.Second)) + ":61000", 0, "", 0},
		{"other port", tk(100, "pve1", 61000, now) + ":61001", 0, "", 0},
		{"signed port with leading zero", forge("pvespiceproxy:"+ts+":100:pve1:061000") + ":61000", 0, "", 0},
		{"forged signature", "pvespiceproxy:" + ts + ":100:pve1:61000::" + strings.Repeat("0", 40) + ":61000", 0, "", 0},
		{"other secret", func() string { s, _ := Assemble("x", "u", 100, "pve1", 61000, now); return s }() + ":61000", 0, "", 0},
		{"vmid changed", strings.Replace(tk(100, "pve1", 61000, now), ":100:", ":101:", 1) + ":61000", 0, "", 0},
		{"uppercase signature", strings.ToUpper(tk(100, "pve1", 61000, now)) + ":61000", 0, "", 0},
		{"no connect port", tk(100, "pve1", 61000, now), 0, "", 0},
		{"empty", "", 0, "", 0},
		{"space in node", forge("pvespiceproxy:"+ts+":100:pve 1:61000") + ":61000", 0, "", 0},
		{"node 0", forge("pvespiceproxy:"+ts+":100:0:61000") + ":61000", 0, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vmid, node, port, err := Verify(secret, tt.host, now)
			if tt.wantVMID == 0 {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("Verify(%q) = %d %q %d %v; want ErrInvalid", tt.host, vmid, node, port, err)
				}
				return
			}
			if err != nil || vmid != tt.wantVMID || node != tt.wantNode || port != tt.wantPort {
				t.Errorf("Verify(%q) = %d %q %d %v; want %d %q %d", tt.host, vmid, node, port, err,
					tt.wantVMID, tt.wantNode, tt.wantPort)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s, _ := Assemble(secret, "root@pam", 100, "pve1", 61000, now)
	f.Add(s + ":61000")
	f.Fuzz(func(t *testing.T, host string) {
		_, _, _, _ = Verify(secret, host, now)
	})
}
