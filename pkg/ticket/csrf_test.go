package ticket

import (
	"errors"
	"testing"
	"time"
)

// The expected values were computed with OpenSSL 3.0, independently of this
// package:
//
//	S=$(printf '' | openssl dgst -sha256 -hmac 'pve-www-test-key' -binary | base64 | tr -d '=')
//	printf '66C8E0F0:root@pam' | openssl dgst -sha256 -hmac "$S" -binary | base64 | tr -d '='
//	printf '66C8E0F0:alice@pve' | openssl dgst -sha256 -hmac "$S" -binary | base64 | tr -d '='
const (
	testWWWKey     = "pve-www-test-key"
	wantSecret     = "yHT0cA5pUqWjxV/n9mc3oytvHcCOO9olSCZec6r50Gs"
	wantTokenRoot  = "66C8E0F0:LtgeeCfsCde0hau8OKmi/hGzKqQWaU6OGuqhXn8pJfg"
	wantTokenAlice = "66C8E0F0:tbUnB6BwZOjFK5kQSRZEc4Aq3IdAoiYJUhTIs7My5/I"
)

func TestCSRFVectors(t *testing.T) {
	if got := CSRFSecret([]byte(testWWWKey)); got != wantSecret {
		t.Fatalf("CSRFSecret = %q; want %q", got, wantSecret)
	}
	if got := CSRFToken(wantSecret, "root@pam", vectorTime); got != wantTokenRoot {
		t.Errorf("CSRFToken(root@pam) = %q; want %q", got, wantTokenRoot)
	}
	if got := CSRFToken(wantSecret, "alice@pve", vectorTime); got != wantTokenAlice {
		t.Errorf("CSRFToken(alice@pve) = %q; want %q", got, wantTokenAlice)
	}
}

func TestVerifyCSRF(t *testing.T) {
	at := func(s int64) time.Time { return vectorTime.Add(time.Duration(s) * time.Second) }
	for _, tt := range []struct {
		name, user, token string
		now               time.Time
		want              bool
	}{
		{"fresh", "root@pam", wantTokenRoot, at(0), true},
		{"age 7199", "root@pam", wantTokenRoot, at(7199), true},
		{"age 7200", "root@pam", wantTokenRoot, at(7200), false},
		{"future 299", "root@pam", wantTokenRoot, at(-299), true},
		{"future 300", "root@pam", wantTokenRoot, at(-300), false},
		{"other user", "alice@pve", wantTokenRoot, at(0), false},
		{"tampered digest", "root@pam", wantTokenRoot[:20] + "x" + wantTokenRoot[21:], at(0), false},
		{"lowercase time", "root@pam", "66c8e0f0" + wantTokenRoot[8:], at(0), false},
		{"padded digest", "root@pam", wantTokenRoot + "=", at(0), false},
		{"no digest", "root@pam", "66C8E0F0:", at(0), false},
		{"empty", "root@pam", "", at(0), false},
		{"whitespace", "root@pam", wantTokenRoot + " ", at(0), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyCSRF(wantSecret, tt.user, tt.token, tt.now)
			if got := err == nil; got != tt.want {
				t.Errorf("VerifyCSRF(%q, %q) = %v; want ok %v", tt.user, tt.token, err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrInvalidCSRF) {
				t.Errorf("err = %v; want ErrInvalidCSRF", err)
			}
		})
	}
}
