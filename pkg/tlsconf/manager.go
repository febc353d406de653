package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Manager owns the server TLS configuration and swaps it on Reload. It is safe
// for concurrent use.
type Manager struct {
	log   *slog.Logger
	outer *tls.Config           // returned by ServerConfig; never modified after New
	cur   atomic.Pointer[state] // configuration for new handshakes
}

// state is one immutable generation of the configuration.
type state struct {
	settings Settings
	certs    *CertSet
	config   *tls.Config // handed to handshakes by GetConfigForClient
	// node is the configuration of handshakes offering NodeProto (nil
	// without cluster CAs: such handshakes get config and no NodeProto).
	node *tls.Config
}

// New validates settings and certs and returns a Manager serving them.
// Setting warnings are not logged here; Settings.Validate returns them (and
// proxyconf collects them) so that they are reported once.
func New(settings Settings, certs *CertSet, log *slog.Logger) (*Manager, error) {
	m := &Manager{log: log.With("component", "tls")}
	st, err := build(settings, certs)
	if err != nil {
		return nil, fmt.Errorf("tls configuration: %w", err)
	}
	m.cur.Store(st)
	m.outer = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			st := m.cur.Load()
			if st.node != nil && offersNodeProto(hello) {
				return st.node, nil
			}
			return st.config, nil
		},
		// Only used if a caller bypasses GetConfigForClient; same choice.
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cur.Load().certificate(hello)
		},
	}
	m.logState(st, "tls configuration loaded")
	return m, nil
}

// ServerConfig returns the configuration to pass to tls.NewListener or
// http.Server.TLSConfig. It is the same object for the life of the Manager and
// must not be modified; every handshake uses the configuration current at
// that moment.
func (m *Manager) ServerConfig() *tls.Config { return m.outer }

// Reload validates settings and certs and, if they are valid, makes them the
// configuration for new handshakes. Established connections are not
// affected. On error the running configuration stays.
func (m *Manager) Reload(settings Settings, certs *CertSet) error {
	st, err := build(settings, certs)
	if err != nil {
		return fmt.Errorf("reload tls configuration: %w", err)
	}
	m.cur.Store(st)
	m.logState(st, "tls configuration reloaded")
	return nil
}

// Current returns the settings and certificates in use.
func (m *Manager) Current() (Settings, *CertSet) {
	st := m.cur.Load()
	return st.settings, st.certs
}

func (m *Manager) logState(st *state, msg string) {
	args := []any{"path", st.certs.CertFile, "fingerprint", Fingerprint(st.certs.Primary.Leaf)}
	if st.certs.ECDSA != nil {
		args = append(args, "ecdsa_path", st.certs.ECDSACertFile, "ecdsa_fingerprint", Fingerprint(st.certs.ECDSA.Leaf))
	}
	m.log.Info(msg, args...)
}

// build validates settings and certs and returns the state serving them.
func build(settings Settings, certs *CertSet) (*state, error) {
	r, _, err := settings.resolve()
	if err != nil {
		return nil, err
	}
	if certs == nil || certs.Primary == nil {
		return nil, errors.New("no certificate")
	}
	if certs, err = withLeaves(certs); err != nil {
		return nil, err
	}
	st := &state{settings: settings, certs: certs}
	st.config = &tls.Config{
		MinVersion:     r.minVersion,
		MaxVersion:     r.maxVersion,
		CipherSuites:   r.cipherSuites,
		GetCertificate: st.certificate,
	}
	if certs.ClusterCAs != nil {
		st.node = nodeConfig(st.config, certs.ClusterCAs)
	}
	return st, nil
}

// withLeaves checks that the certificates of cs have a chain and a key, and
// returns cs, or a copy of it with the missing parsed leaves filled in.
func withLeaves(cs *CertSet) (*CertSet, error) {
	cp := *cs
	changed := false
	for _, c := range []**tls.Certificate{&cp.Primary, &cp.ECDSA} {
		if *c == nil {
			continue
		}
		if len((*c).Certificate) == 0 || (*c).PrivateKey == nil {
			return nil, errors.New("certificate without chain or private key")
		}
		if (*c).Leaf != nil {
			continue
		}
		leaf, err := x509.ParseCertificate((*c).Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		withLeaf := **c
		withLeaf.Leaf = leaf
		*c, changed = &withLeaf, true
	}
	if !changed {
		return cs, nil
	}
	return &cp, nil
}

// certificate chooses the ECDSA certificate for clients that can use it and
// the primary one otherwise.
func (st *state) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if e := st.certs.ECDSA; e != nil && hello.SupportsCertificate(e) == nil {
		return e, nil
	}
	return st.certs.Primary, nil
}
