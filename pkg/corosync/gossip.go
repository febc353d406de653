package corosync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// DefaultGossipPort is the port of the gossip between the nodes when
// cluster.cfg sets none: TCP and UDP, outside the UDP ports 5405-5412 that
// corosync's links use and the TCP ports of PVE's daemons (85, 3128, 8006).
const DefaultGossipPort = 5420

// Settings are pvenode's settings of the cluster, in SettingsFile:
//
//	# comment
//	gossip-port: 5420
//
// one "key: value" per line, as datacenter.cfg.
type Settings struct {
	// GossipPort is the TCP and UDP port pvestatd gossips on, at each
	// node's link 0 address.
	GossipPort int
}

// DefaultSettings returns the settings of a missing or empty file.
func DefaultSettings() Settings { return Settings{GossipPort: DefaultGossipPort} }

// settingsHeader starts every file Marshal writes.
const settingsHeader = "# pvenode cluster settings (PVE does not read this file).\n" +
	"# gossip-port: TCP and UDP port of the status gossip between the nodes (pvestatd)\n"

func validPort(p int) bool { return p > 0 && p < 65536 }

// ParseSettings parses the settings file; name is used in errors. Blank
// lines and lines starting with '#' are ignored. Every problem is reported
// as "<name>:<line>: ...": a line without "key: value", an unknown or
// repeated key, a bad value. The result holds the good lines, and defaults
// for the rest, even when there is an error.
func ParseSettings(name string, data []byte) (Settings, error) {
	s := DefaultSettings()
	var errs []error
	seen := map[string]int{}
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, n+1, fmt.Sprintf(format, args...)))
		}
		key, val, ok := strings.Cut(line, ":")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			fail("expected 'key: value', got %q", line)
			continue
		}
		if first, dup := seen[key]; dup {
			fail("second '%s' (first on line %d)", key, first)
			continue
		}
		seen[key] = n + 1
		switch key {
		case "gossip-port":
			p, err := strconv.Atoi(val)
			if err != nil || !validPort(p) {
				fail("gossip-port %q: not a port number (1-65535)", val)
				continue
			}
			s.GossipPort = p
		default:
			fail("unknown key '%s'", key)
		}
	}
	return s, errors.Join(errs...)
}

// Marshal renders the settings file: a header comment, then every setting.
func (s Settings) Marshal() []byte {
	return []byte(settingsHeader + "gossip-port: " + strconv.Itoa(s.GossipPort) + "\n")
}

// ReadSettings reads SettingsFile; a missing file gives the defaults. An
// error in the file is returned with the settings ParseSettings made.
func ReadSettings(r Reader) (Settings, error) {
	data, err := r.ReadFile(SettingsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultSettings(), nil
	}
	if err != nil {
		return DefaultSettings(), err
	}
	return ParseSettings(SettingsFile, data)
}

// GossipKeySize is the size of a gossip key: 32 bytes, an AES-256 key for
// memberlist's encryption.
const GossipKeySize = 32

// ErrNoGossipKey is returned when GossipKeyFile does not exist.
var ErrNoGossipKey = errors.New("no gossip key (" + GossipKeyFile + ")")

// ParseGossipKeys parses the key file: one key per line, base64 (standard,
// padded) of GossipKeySize bytes; blank lines and lines starting with '#'
// are ignored. The first key encrypts; all keys decrypt, so that a new key
// can be rolled out before it becomes the first. Create writes one key.
func ParseGossipKeys(name string, data []byte) ([][]byte, error) {
	var keys [][]byte
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(k) != GossipKeySize {
			// The line is a secret: never quote it.
			return nil, fmt.Errorf("%s:%d: not the base64 of a %d-byte key", name, n+1, GossipKeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", name)
	}
	return keys, nil
}

// ReadGossipKeys reads the gossip keys, the primary first; ErrNoGossipKey
// if the file does not exist.
func ReadGossipKeys(r Reader) ([][]byte, error) {
	data, err := r.ReadFile(GossipKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoGossipKey
	}
	if err != nil {
		return nil, err
	}
	return ParseGossipKeys(GossipKeyFile, data)
}

// marshalGossipKey renders a key file holding key.
func marshalGossipKey(key []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
}

func newKey() ([]byte, error) {
	k := make([]byte, GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	return k, nil
}

// EnsureGossipKey returns the primary gossip key, creating the key file
// (mode 0600, in priv/) with a new random key if it does not exist. A file
// that exists but holds no valid key is an error, never replaced.
func EnsureGossipKey(ctx context.Context, root Root) ([]byte, error) {
	var key []byte
	if err := root.MkdirAll(path.Dir(GossipKeyFile), 0o700); err != nil {
		return nil, err
	}
	err := root.Update(ctx, GossipKeyFile, keyMode, func(old []byte) ([]byte, error) {
		if old != nil {
			keys, err := ParseGossipKeys(GossipKeyFile, old)
			if err != nil {
				return nil, err
			}
			key = keys[0]
			return old, nil
		}
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		key = k
		return marshalGossipKey(k), nil
	})
	if err != nil {
		return nil, err
	}
	return key, nil
}

// NewGossipKey replaces the key file with a new random key and returns it
// (a new cluster must not share the key of an earlier one).
func NewGossipKey(ctx context.Context, root Root) ([]byte, error) {
	if err := root.MkdirAll(path.Dir(GossipKeyFile), 0o700); err != nil {
		return nil, err
	}
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	data := marshalGossipKey(k)
	err = root.Update(ctx, GossipKeyFile, keyMode, func([]byte) ([]byte, error) {
		return bytes.Clone(data), nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}
