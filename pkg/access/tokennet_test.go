package access

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseTokenNetworks(t *testing.T) {
	data, err := os.ReadFile("testdata/token-networks.cfg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTokenNetworks("token-networks.cfg", data)
	if err != nil {
		t.Fatalf("ParseTokenNetworks(testdata) error = %v", err)
	}
	want := TokenNetworks{
		"alice@pve!ci":    "192.0.2.0/24,2001:db8::/32",
		"alice@pve!full":  "10.0.0.1 - 10.0.0.5",
		"root@pam!backup": "127.0.0.1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTokenNetworks(testdata) = %v; want %v", got, want)
	}
	again, err := ParseTokenNetworks("marshaled", got.Marshal())
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("parse of Marshal() = %v, %v; want %v", again, err, want)
	}
	if !strings.HasPrefix(string(got.Marshal()), tokenNetworksHeader) {
		t.Errorf("Marshal() lacks the header:\n%s", got.Marshal())
	}
}

func TestParseTokenNetworksErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/token-networks-bad.cfg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTokenNetworks("token-networks-bad.cfg", data)
	if err == nil {
		t.Fatal("ParseTokenNetworks(bad) error = nil")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`token-networks-bad.cfg:2: invalid token id "alice@pve"`,
		`token-networks-bad.cfg:3: token alice@pve!ci: no address list`,
		`token-networks-bad.cfg:4: token alice@pve!ci2: address list entry "10.0.0.1/8"`,
		`token-networks-bad.cfg:5: token alice@pve!ci3: address list entry " 198.51.100.0/24"`,
		`token-networks-bad.cfg:7: second entry for token alice@pve!ok (first on line 6)`,
	}
	if len(lines) != len(want) {
		t.Fatalf("error has %d lines; want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error line %d = %q; want it to start with %q", i+1, lines[i], want[i])
		}
	}
	if !reflect.DeepEqual(got, TokenNetworks{"alice@pve!ok": "192.0.2.1"}) {
		t.Errorf("good lines of the bad file = %v; want only alice@pve!ok", got)
	}
}

func TestTokenNetworksSetRemove(t *testing.T) {
	tn := TokenNetworks{}
	for _, tt := range []struct {
		name, id, list string
		ok             bool
	}{
		{"valid", "alice@pve!ci", " 192.0.2.0/24 ", true},
		{"all", "bob@pve!ab", "all", true},
		{"user id", "alice@pve", "192.0.2.0/24", false},
		{"bad list", "alice@pve!ci2", "192.0.2.0/33", false},
	} {
		if err := tn.Set(tt.id, tt.list); (err == nil) != tt.ok {
			t.Errorf("%s: Set(%q, %q) error = %v; want ok %v", tt.name, tt.id, tt.list, err, tt.ok)
		}
	}
	if tn["alice@pve!ci"] != "192.0.2.0/24" {
		t.Errorf("Set kept %q; want the trimmed list", tn["alice@pve!ci"])
	}
	if err := tn.Set("alice@pve!ci", ""); err != nil || len(tn) != 1 {
		t.Errorf("Set(id, \"\") = %v, left %v; want the entry removed", err, tn)
	}
	tn = TokenNetworks{"alice@pve!a": "all", "alice@pve!b": "all", "alice@pvex!c": "all", "bob@pve!a": "all"}
	tn.Remove("alice@pve!a")
	tn.Remove("alice@pve")
	if !reflect.DeepEqual(tn, TokenNetworks{"alice@pvex!c": "all", "bob@pve!a": "all"}) {
		t.Errorf("after Remove of a token and of a user: %v", tn)
	}
}

func TestUpdateTokenNetworks(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t, nil)
	err := UpdateTokenNetworks(ctx, env.root, func(tn TokenNetworks) error {
		return tn.Set("alice@pve!ci", "192.0.2.0/24")
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := env.root.Stat(TokenNetworksFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("%s mode %v; want 0640", TokenNetworksFile, fi.Mode().Perm())
	}
	data, _ := env.root.ReadFile(TokenNetworksFile)
	if !strings.HasSuffix(string(data), "\nalice@pve!ci 192.0.2.0/24\n") {
		t.Errorf("file after Set:\n%s", data)
	}

	// a result with an invalid list is not written
	err = UpdateTokenNetworks(ctx, env.root, func(tn TokenNetworks) error {
		tn["alice@pve!ci"] = "not-an-address"
		return nil
	})
	if err == nil {
		t.Error("UpdateTokenNetworks wrote an invalid list")
	}
	// a broken file is not rewritten: dropping its bad line would lift a
	// restriction
	broken := string(data) + "alice@pve!full 10.0.0.1/8\n"
	if err := env.root.WriteFile(TokenNetworksFile, []byte(broken), 0o640); err != nil {
		t.Fatal(err)
	}
	err = UpdateTokenNetworks(ctx, env.root, func(tn TokenNetworks) error { return nil })
	if err == nil || !strings.Contains(err.Error(), TokenNetworksFile+":4:") {
		t.Errorf("UpdateTokenNetworks on a broken file: error = %v; want one naming line 4", err)
	}
	// ClearTokenNetworks edits lines, so it works on it
	if err := ClearTokenNetworks(ctx, env.root, "alice@pve!ci"); err != nil {
		t.Fatal(err)
	}
	data, _ = env.root.ReadFile(TokenNetworksFile)
	if strings.Contains(string(data), "alice@pve!ci ") || !strings.Contains(string(data), "alice@pve!full 10.0.0.1/8") {
		t.Errorf("after ClearTokenNetworks(alice@pve!ci):\n%s", data)
	}
	if err := ClearTokenNetworks(ctx, env.root, "alice@pve"); err != nil {
		t.Fatal(err)
	}
	data, _ = env.root.ReadFile(TokenNetworksFile)
	if string(data) != tokenNetworksHeader {
		t.Errorf("after ClearTokenNetworks(alice@pve):\n%s\nwant only the header", data)
	}
}

func TestClearTokenNetworksWithoutFile(t *testing.T) {
	env := newTestEnv(t, nil)
	if err := ClearTokenNetworks(context.Background(), env.root, "alice@pve"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.root.Stat(TokenNetworksFile); err == nil {
		t.Error("ClearTokenNetworks created the file")
	}
}

func TestAuthenticateTokenFrom(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t, nil)
	const ci = "11111111-1111-1111-1111-111111111111"
	const full = "22222222-2222-2222-2222-222222222222"
	inside, outside := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("127.0.0.1")

	// no file: no restriction
	if _, err := env.a.AuthenticateTokenFrom(ctx, "alice@pve!ci", ci, outside); err != nil {
		t.Fatalf("without %s: %v", TokenNetworksFile, err)
	}
	if err := UpdateTokenNetworks(ctx, env.root, func(tn TokenNetworks) error {
		return tn.Set("alice@pve!ci", "192.0.2.0/24")
	}); err != nil {
		t.Fatal(err)
	}
	env.a.Invalidate()
	for _, tt := range []struct {
		name   string
		id     string
		secret string
		client netip.Addr
		want   error // nil, or the sentinel the error must match
	}{
		{"inside", "alice@pve!ci", ci, inside, nil},
		{"inside, IPv4-mapped", "alice@pve!ci", ci, netip.MustParseAddr("::ffff:192.0.2.7"), nil},
		{"outside", "alice@pve!ci", ci, outside, ErrTokenNetwork},
		{"no address", "alice@pve!ci", ci, netip.Addr{}, ErrTokenNetwork},
		{"wrong secret, outside", "alice@pve!ci", full, outside, ErrBadTokenSecret},
		{"token without a list", "alice@pve!full", full, outside, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.a.AuthenticateTokenFrom(ctx, tt.id, tt.secret, tt.client)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("AuthenticateTokenFrom(%s, %v) = %v; want success", tt.id, tt.client, err)
			case tt.want == nil:
			case !errors.Is(err, ErrAuthFailed):
				t.Errorf("AuthenticateTokenFrom(%s, %v) = %v; want ErrAuthFailed", tt.id, tt.client, err)
			case tt.want == ErrTokenNetwork && !errors.Is(err, ErrTokenNetwork):
				t.Errorf("AuthenticateTokenFrom(%s, %v) = %v; want ErrTokenNetwork", tt.id, tt.client, err)
			case tt.want == ErrBadTokenSecret && errors.Is(err, ErrTokenNetwork):
				t.Errorf("AuthenticateTokenFrom(%s, %v) = %v; a wrong secret must be refused as such", tt.id, tt.client, err)
			}
		})
	}
	if _, err := env.a.AuthenticateToken(ctx, "alice@pve!ci", ci); !errors.Is(err, ErrTokenNetwork) {
		t.Errorf("AuthenticateToken (no address) of a restricted token = %v; want ErrTokenNetwork", err)
	}
	var ae *AuthError
	_, err := env.a.AuthenticateTokenFrom(ctx, "alice@pve!ci", ci, outside)
	if !errors.As(err, &ae) || ae.User != "alice@pve!ci" || !strings.Contains(ae.Reason, "127.0.0.1") {
		t.Errorf("refusal %#v; want an AuthError naming the token and the client", err)
	}

	// a broken file refuses every token, restricted or not
	if err := env.root.WriteFile(TokenNetworksFile, []byte("alice@pve!full 10.0.0.1/8\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	env.a.Invalidate()
	_, err = env.a.AuthenticateTokenFrom(ctx, "alice@pve!ci", ci, inside)
	if !errors.As(err, &ae) || !strings.Contains(ae.Reason, TokenNetworksFile+":1:") {
		t.Errorf("with a broken file: %v; want a refusal naming %s:1", err, TokenNetworksFile)
	}
}
