package access_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/tfa"
)

const totpURI = "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP&digits=6&algorithm=SHA1&period=30&issuer=pvenode"

// tfaHarness is a harness where bob@pve has a TOTP entry and recovery keys.
func tfaHarness(t *testing.T) (*harness, []string) {
	t.Helper()
	h := newHarness(t, usersCfg)

	cfg, err := tfa.Parse([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := cfg.AddTOTPUnverified("bob@pve", "phone", totpURI, now); err != nil {
		t.Fatal(err)
	}
	keys, err := cfg.AddRecovery("bob@pve", now)
	if err != nil {
		t.Fatal(err)
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "priv/tfa.cfg"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return h, keys
}

type ticketReply struct {
	Username string                     `json:"username"`
	Ticket   string                     `json:"ticket"`
	CSRF     string                     `json:"CSRFPreventionToken"`
	NeedTFA  int                        `json:"NeedTFA"`
	Cap      map[string]json.RawMessage `json:"cap"`
}

func (h *harness) login(params ...string) (apitest.Reply, ticketReply) {
	h.TB.Helper()
	r := h.Do("", "POST", "/access/ticket", vals(params...))
	var tr ticketReply
	if r.Status == http.StatusOK {
		r.Decode(h.TB, &tr)
	}
	return r, tr
}

func currentCode(t *testing.T, offset time.Duration) string {
	t.Helper()
	tt, err := tfa.ParseTOTP(totpURI)
	if err != nil {
		t.Fatal(err)
	}
	code, err := tt.Code(time.Now().Add(offset))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestTFALogin is the two-step login of current PVE: the password gives a
// half ticket with NeedTFA, the TOTP code computed here gives the full one;
// the same code cannot be used twice; recovery keys work once each.
func TestTFALogin(t *testing.T) {
	h, keys := tfaHarness(t)

	// Step one: the password.
	r, half := h.login("username", "bob@pve", "password", testPassword)
	if r.Status != 200 || half.NeedTFA != 1 || half.Cap != nil || !strings.HasPrefix(half.Ticket, "PVE:!tfa!") {
		t.Fatalf("first step: %d %q %+v", r.Status, r.Message, half)
	}
	// The half ticket is no login ticket.
	if r := h.Do("ticket:"+half.Ticket, "GET", "/access/permissions", nil); r.Status != 401 {
		t.Errorf("half ticket used as a login ticket: %d, want 401", r.Status)
	}
	// A wrong code fails.
	if r, _ := h.login("username", "bob@pve", "password", "totp:000000", "tfa-challenge", half.Ticket); r.Status != 401 {
		t.Errorf("wrong code: %d, want 401", r.Status)
	}
	// Step two: the right code.
	code := currentCode(t, 0)
	r, full := h.login("username", "bob@pve", "password", "totp:"+code, "tfa-challenge", half.Ticket)
	if r.Status != 200 || full.NeedTFA != 0 || full.Cap == nil || strings.HasPrefix(full.Ticket, "PVE:!tfa!") {
		t.Fatalf("second step: %d %q %+v", r.Status, r.Message, full)
	}
	if r := h.Do("ticket:"+full.Ticket, "GET", "/access/permissions", nil); r.Status != 200 {
		t.Errorf("full ticket: %d", r.Status)
	}
	// Replay of the same code, with a fresh half ticket, is refused.
	_, half2 := h.login("username", "bob@pve", "password", testPassword)
	if r, _ := h.login("username", "bob@pve", "password", "totp:"+code, "tfa-challenge", half2.Ticket); r.Status != 401 {
		t.Errorf("replayed code: %d, want 401", r.Status)
	}
	// Another user's half ticket does not answer for bob.
	if r, _ := h.login("username", "carol@pve", "password", "totp:"+currentCode(t, 30*time.Second), "tfa-challenge", half2.Ticket); r.Status != 401 {
		t.Errorf("bob's challenge used for carol: %d, want 401", r.Status)
	}
	// A recovery key works once.
	_, half3 := h.login("username", "bob@pve", "password", testPassword)
	if r, _ := h.login("username", "bob@pve", "password", "recovery:"+keys[3], "tfa-challenge", half3.Ticket); r.Status != 200 {
		t.Errorf("recovery key: %d %q", r.Status, r.Message)
	}
	_, half4 := h.login("username", "bob@pve", "password", testPassword)
	if r, _ := h.login("username", "bob@pve", "password", "recovery:"+keys[3], "tfa-challenge", half4.Ticket); r.Status != 401 {
		t.Errorf("used recovery key again: %d, want 401", r.Status)
	}
	// tfa.cfg stays readable by PVE's format parser and records the use.
	cfg, err := tfa.Parse([]byte(h.File("priv/tfa.cfg")))
	if err != nil {
		t.Fatalf("tfa.cfg after logins: %v", err)
	}
	if ch := cfg.Challenge("bob@pve"); ch == nil {
		t.Error("bob lost his second factors")
	}
	// Users without second factors log in in one step.
	if r, tr := h.login("username", "carol@pve", "password", testPassword); r.Status != 200 || tr.NeedTFA != 0 || tr.Cap == nil {
		t.Errorf("carol: %d %+v", r.Status, tr)
	}
}

// TestTFALoginOTPParam: PVE also takes the code with the password (otp).
func TestTFALoginOTPParam(t *testing.T) {
	h, _ := tfaHarness(t)
	r, tr := h.login("username", "bob@pve", "password", testPassword, "otp", "totp:"+currentCode(t, 0))
	if r.Status != 200 || tr.NeedTFA != 0 || tr.Cap == nil {
		t.Fatalf("otp with the password: %d %q %+v", r.Status, r.Message, tr)
	}
	if r, _ := h.login("username", "bob@pve", "password", testPassword, "otp", "totp:000000"); r.Status != 401 {
		t.Errorf("wrong otp: %d, want 401", r.Status)
	}
}
