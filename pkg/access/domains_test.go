package access

import (
	"maps"
	"testing"
)

func TestParseDomains(t *testing.T) {
	in := "# realms\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 0\n\ttfa type=oath,step=30,digits=6\n\n" +
		"ldap: corp\n\tbase_dn dc=example,dc=com\n\tserver1 ldap.example.com\n\tuser_attr uid\n\n" +
		"pam: pam\n\ttfa type=yubico,id=1\n\npve: pve\n\ttfa ignored\n"
	want := map[string]Realm{
		"pve":  {Type: "pve", TFA: "type=oath,step=30,digits=6"},
		"corp": {Type: "ldap"},
		"pam":  {Type: "pam", TFA: "type=yubico,id=1"},
	}
	if got := ParseDomains([]byte(in)); !maps.Equal(got, want) {
		t.Errorf("ParseDomains = %v; want %v", got, want)
	}
	if got := ParseDomains(nil); !maps.Equal(got, map[string]Realm{"pam": {Type: "pam"}, "pve": {Type: "pve"}}) {
		t.Errorf("ParseDomains(empty) = %v; want the built-in realms", got)
	}
}

func TestUserHasTFA(t *testing.T) {
	for _, tt := range []struct {
		name, data, user string
		want             bool
	}{
		{"empty file", "", "a@pve", false},
		{"totp", `{"users":{"a@pve":{"totp":[{"id":"x","created":1,"entry":"otpauth://totp/a"}]}}}`, "a@pve", true},
		{"other user", `{"users":{"b@pve":{"totp":[{"id":"x","created":1,"entry":"e"}]}}}`, "a@pve", false},
		{"webauthn", `{"users":{"a@pve":{"webauthn":[{"id":"x","created":1,"entry":{}}]}}}`, "a@pve", true},
		{"only disabled", `{"users":{"a@pve":{"yubico":[{"id":"x","enable":false,"created":1,"entry":"e"}]}}}`, "a@pve", false},
		{"recovery keys left", `{"users":{"a@pve":{"recovery":{"secret":"s","entries":[null,"ab"],"created":1}}}}`, "a@pve", true},
		{"recovery keys used up", `{"users":{"a@pve":{"recovery":{"secret":"s","entries":[null],"created":1}}}}`, "a@pve", false},
		{"legacy line format", "a@pve:oath:e30=\n", "a@pve", true},
		{"broken json fails closed", `{"users":`, "a@pve", true},
	} {
		if got := UserHasTFA([]byte(tt.data), tt.user); got != tt.want {
			t.Errorf("%s: UserHasTFA = %v; want %v", tt.name, got, tt.want)
		}
	}
}
