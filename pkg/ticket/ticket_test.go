package ticket

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// The files in testdata were made with OpenSSL 3.0, independently of this
// package:
//
//	openssl genrsa -out authkey.key 2048                  # PKCS #8
//	openssl rsa -in authkey.key -pubout -out authkey.pub  # SPKI
//	openssl rsa -in authkey.key -traditional -out authkey-pkcs1.key
//	openssl rsa -in authkey.key -RSAPublicKey_out -out authkey-pkcs1.pub
//
// openssl-tickets.txt holds "<name> <ticket>" lines, each signature made by
//
//	printf '%s' "$PLAIN" | openssl dgst -sha1 -sign authkey.key | base64 -w0
//
// (sha256: -sha256; pss: -sha256 -sigopt rsa_padding_mode:pss
// -sigopt rsa_pss_saltlen:-1). The tfa ticket is signed over
// "$PLAIN:alice@pve", the vnc ticket over "$PLAIN:root@pam:/vms/100:5900".

// vectorTime is the TIME field (66C8E0F0) of the OpenSSL-made tickets.
var vectorTime = time.Unix(0x66C8E0F0, 0)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PublicKey) {
	t.Helper()
	priv, err := ParsePrivateKey(readFile(t, "testdata/authkey.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(readFile(t, "testdata/authkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func vectors(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open("testdata/openssl-tickets.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, tk, ok := strings.Cut(sc.Text(), " ")
		if ok {
			m[name] = tk
		}
	}
	return m
}

func TestSignMatchesOpenSSL(t *testing.T) {
	priv, _ := testKeys(t)
	got, err := Sign(priv, PrefixLogin, "root@pam", "", vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	// PKCS #1 v1.5 signatures are deterministic, so ours must equal OpenSSL's.
	if want := vectors(t)["sha1"]; got != want {
		t.Errorf("Sign = %q; want %q", got, want)
	}
	got, err = Sign(priv, "PVEVNC", "", "root@pam:/vms/100:5900", vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	if want := vectors(t)["vnc"]; got != want {
		t.Errorf("Sign(vnc) = %q; want %q", got, want)
	}
	got, err = Sign(priv, PrefixLogin, `!tfa!{"totp":true,"recovery":[0,1]}`, "alice@pve", vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	if want := vectors(t)["tfa"]; got != want {
		t.Errorf("Sign(tfa) = %q; want %q", got, want)
	}
}

func TestVerifyOpenSSLVectors(t *testing.T) {
	_, pub := testKeys(t)
	pkcs1, err := ParsePublicKey(readFile(t, "testdata/authkey-pkcs1.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !pkcs1.Equal(pub) {
		t.Fatal("PKCS #1 and SPKI public keys differ")
	}
	vec := vectors(t)
	now := vectorTime.Add(10 * time.Second)
	keys := []PublicKey{{Key: pub, ModTime: vectorTime.Add(-time.Hour)}}
	for _, tt := range []struct {
		name, vector, secret, wantData string
	}{
		{"pkcs1v15 sha1", "sha1", "", "root@pam"},
		{"pkcs1v15 sha256", "sha256", "", "root@pam"},
		{"pss sha256", "pss", "", "root@pam"},
		{"tfa with secret data", "tfa", "alice@pve", `!tfa!{"totp":true,"recovery":[0,1]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, age, err := Verify(vec[tt.vector], PrefixLogin, tt.secret, keys, now, true)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if data != tt.wantData || age != 10*time.Second {
				t.Errorf("Verify = %q, %v; want %q, 10s", data, age, tt.wantData)
			}
		})
	}
	if _, _, err := Verify(vec["tfa"], PrefixLogin, "bob@pve", keys, now, true); err == nil {
		t.Error("tfa ticket verified with another user as secret data")
	}
	if _, _, err := Verify(vec["tfa"], PrefixLogin, "", keys, now, true); err == nil {
		t.Error("tfa ticket verified without secret data")
	}
	data, _, err := VerifyWindow(vec["vnc"], "PVEVNC", "root@pam:/vms/100:5900", pub, now, -20, 40)
	if err != nil || data != "" {
		t.Errorf("VerifyWindow(vnc) = %q, %v; want \"\", nil", data, err)
	}
}

func TestParseKeys(t *testing.T) {
	k8, err := ParsePrivateKey(readFile(t, "testdata/authkey.key"))
	if err != nil {
		t.Fatal(err)
	}
	k1, err := ParsePrivateKey(readFile(t, "testdata/authkey-pkcs1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !k8.Equal(k1) {
		t.Error("PKCS #8 and PKCS #1 private keys differ")
	}
	for _, bad := range []string{"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := ParsePrivateKey([]byte(bad)); err == nil {
			t.Errorf("ParsePrivateKey(%q) succeeded", bad)
		}
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded", bad)
		}
	}
}

func TestGenerateAuthKey(t *testing.T) {
	privPEM, pubPEM, err := GenerateAuthKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("private key PEM starts %q", privPEM[:30])
	}
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("public key PEM starts %q", pubPEM[:30])
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if priv.N.BitLen() != AuthKeyBits || !pub.Equal(&priv.PublicKey) {
		t.Errorf("key pair: %d bits, matching %v", priv.N.BitLen(), pub.Equal(&priv.PublicKey))
	}
}

func TestAgeWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ago := func(s int64) time.Time { return now.Add(-time.Duration(s) * time.Second) }
	for _, tt := range []struct {
		name             string
		key              PublicKey
		quorate          bool
		wantMin, wantMax int64
		wantOK           bool
	}{
		{"fresh current key", PublicKey{ModTime: now}, true, -300, 300, true},
		{"current key 1h old", PublicKey{ModTime: ago(3600)}, true, -300, 3900, true},
		{"current key 2h old", PublicKey{ModTime: ago(7200)}, true, -300, 7200, true},
		{"current key 7199s old", PublicKey{ModTime: ago(7199)}, true, -300, 7499, true},
		{"current key 24h old", PublicKey{ModTime: ago(86400)}, true, -300, 7200, true},
		{"current key 25h old quorate", PublicKey{ModTime: ago(90000)}, true, 3600, 7200, true},
		{"current key 25h old not quorate", PublicKey{ModTime: ago(90000)}, false, -300, 7200, true},
		{"current key 26h old quorate", PublicKey{ModTime: ago(86400 + 7200)}, true, 7200, 7200, true},
		{"current key too old", PublicKey{ModTime: ago(86400 + 7201)}, true, 0, 0, false},
		{"current key from the future", PublicKey{ModTime: now.Add(time.Hour)}, true, -300, 300, true},
		{"old key just rotated", PublicKey{ModTime: now, Rotated: true}, true, -300, 7200, true},
		{"old key 1h", PublicKey{ModTime: ago(3600), Rotated: true}, true, 3300, 7200, true},
		{"old key at limit", PublicKey{ModTime: ago(7500), Rotated: true}, true, 7200, 7200, true},
		{"old key unusable", PublicKey{ModTime: ago(7501), Rotated: true}, true, 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gotMin, gotMax, ok := AgeWindow(tt.key, now, tt.quorate)
			if gotMin != tt.wantMin || gotMax != tt.wantMax || ok != tt.wantOK {
				t.Errorf("AgeWindow = %d, %d, %v; want %d, %d, %v", gotMin, gotMax, ok, tt.wantMin, tt.wantMax, tt.wantOK)
			}
		})
	}
}

func TestVerifyWindows(t *testing.T) {
	priv, pub := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	sec := func(s int64) time.Duration { return time.Duration(s) * time.Second }
	mint := func(age int64) string {
		tk, err := Sign(priv, PrefixLogin, "alice@pve", "", now.Add(-sec(age)))
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	cur := func(keyAge int64) []PublicKey { return []PublicKey{{Key: pub, ModTime: now.Add(-sec(keyAge))}} }
	old := func(keyAge int64) []PublicKey {
		return []PublicKey{{Key: pub, ModTime: now.Add(-sec(keyAge)), Rotated: true}}
	}
	for _, tt := range []struct {
		name      string
		ticketAge int64
		keys      []PublicKey
		quorate   bool
		want      bool
	}{
		{"young ticket, key 1h", 60, cur(3600), true, true},
		{"ticket as old as its key", 3600, cur(3600), true, true},
		{"ticket older than key plus grace", 3900, cur(3600), true, false},
		{"ticket older than key within grace", 3899, cur(3600), true, true},
		{"ticket age 7199", 7199, cur(10000), true, true},
		{"ticket age exactly 7200", 7200, cur(10000), true, false},
		{"future ticket 299s", -299, cur(10000), true, true},
		{"future ticket exactly 300s", -300, cur(10000), true, false},
		{"key overdue, new ticket, quorate", 10, cur(90000), true, false},
		{"key overdue, new ticket, not quorate", 10, cur(90000), false, true},
		{"key overdue, ticket before due", 3601, cur(90000), true, true},
		{"key overdue, ticket exactly at min", 3600, cur(90000), true, false},
		{"old key, ticket predates rotation", 3700, old(3600), true, true},
		{"old key, ticket minted after rotation", 60, old(3600), true, false},
		{"old key, ticket exactly at min", 3300, old(3600), true, false},
		{"old key, within grace", 3301, old(3600), true, true},
		{"current fails, old succeeds", 3700, []PublicKey{
			{Key: pub, ModTime: now.Add(-sec(100))},
			{Key: pub, ModTime: now.Add(-sec(100)), Rotated: true},
		}, true, true},
		{"missing current key, old key", 3700, []PublicKey{{}, {Key: pub, ModTime: now.Add(-sec(3600)), Rotated: true}}, true, true},
		{"no keys", 10, nil, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, age, err := Verify(mint(tt.ticketAge), PrefixLogin, "", tt.keys, now, tt.quorate)
			if got := err == nil; got != tt.want {
				t.Fatalf("Verify ok = %v (err %v); want %v", got, err, tt.want)
			}
			if tt.want && (data != "alice@pve" || age != sec(tt.ticketAge)) {
				t.Errorf("Verify = %q, %v; want alice@pve, %v", data, age, sec(tt.ticketAge))
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	priv, pub := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	keys := []PublicKey{{Key: pub, ModTime: now.Add(-time.Hour)}}
	good, err := Sign(priv, PrefixLogin, "alice@pve", "", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(good, PrefixLogin, "", keys, now, true); err != nil {
		t.Fatalf("good ticket: %v", err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	plain, sig, _ := strings.Cut(good, "::")
	flipped := []byte(sig)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	for _, tt := range []struct{ name, ticket, prefix, secret string }{
		{"tampered signature", plain + "::" + string(flipped), PrefixLogin, ""},
		{"tampered user", strings.Replace(good, "alice@pve", "alice@pam", 1), PrefixLogin, ""},
		{"wrong prefix", good, "PVEVNC", ""},
		{"prefix prefix", "PV" + good[3:], PrefixLogin, ""},
		{"unexpected secret data", good, PrefixLogin, "alice@pve"},
		{"lowercase hex time", strings.Replace(good, plain[len(plain)-8:], strings.ToLower(plain[len(plain)-8:]), 1), PrefixLogin, ""},
		{"trailing newline", good + "\n", PrefixLogin, ""},
		{"space inside", strings.Replace(good, "::", ":: ", 1), PrefixLogin, ""},
		{"no signature", plain + "::", PrefixLogin, ""},
		{"single colon", plain + ":" + sig, PrefixLogin, ""},
		{"empty", "", PrefixLogin, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Verify(tt.ticket, tt.prefix, tt.secret, keys, now, true); !errors.Is(err, ErrInvalidTicket) {
				t.Errorf("Verify(%q) err = %v; want ErrInvalidTicket", tt.ticket, err)
			}
		})
	}
	if _, _, err := Verify(good, PrefixLogin, "", []PublicKey{{Key: &other.PublicKey, ModTime: now}}, now, true); err == nil {
		t.Error("ticket verified with an unrelated key")
	}
}

func TestSignEscapesColon(t *testing.T) {
	priv, pub := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	tk, err := Sign(priv, PrefixLogin, "a:b%c", "", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "PVE:a%3Ab%c:6B49D200::"; !strings.HasPrefix(tk, want) {
		t.Errorf("Sign = %q; want prefix %q", tk, want)
	}
	data, _, err := Verify(tk, PrefixLogin, "", []PublicKey{{Key: pub, ModTime: now.Add(-time.Hour)}}, now, true)
	if err != nil || data != "a:b%c" {
		t.Errorf("Verify = %q, %v; want \"a:b%%c\", nil", data, err)
	}
	if _, err := Sign(priv, PrefixLogin, "a b", "", now); err == nil {
		t.Error("Sign accepted data with whitespace")
	}
	if _, err := Sign(priv, "P:Q", "x", "", now); err == nil {
		t.Error("Sign accepted a prefix with ':'")
	}
}
