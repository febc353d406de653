package setup

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// When a node certificate is due for renewal. "pvecm updatecerts" itself
// issues a certificate only when it is missing or with --force; the expiry
// rules are those of PVE's daily pveupdate (pve-manager bin/pveupdate),
// which renews pve-ssl.pem once it has expired or expires within two
// weeks, and also when it is valid for more than two years (certificates
// of old installations ran ten years, which browsers refuse).
const (
	// RenewBefore is how long before its end a node certificate is renewed.
	RenewBefore = 14 * day
	// renewAfter is the remaining validity above which it is renewed too.
	renewAfter = nodeMaxDays * day
)

// ErrNotSetUp is wrapped by the errors of RenewNodeCertificates when the
// node's directory or the cluster CA is missing: the node's first start
// (Ensure) makes them, and a renewal never makes a new CA.
var ErrNotSetUp = errors.New("node not set up")

// RenewOptions control RenewNodeCertificates.
type RenewOptions struct {
	// Options give the node, the names and addresses of its certificates,
	// the service group, the log and the clock, as for Ensure; their
	// defaults are Ensure's, so that a renewed certificate carries the
	// names the first start gave it. AdminUser is ignored.
	Options
	// Force renews the certificates even when they are valid ("pvecm
	// updatecerts --force").
	Force bool
}

// RenewReason says why a certificate was renewed.
type RenewReason string

// The reasons for a renewal, checked in this order.
const (
	ReasonKeyMissing    RenewReason = "key missing"
	ReasonKeyUnparsable RenewReason = "key unparsable"
	ReasonMissing       RenewReason = "missing"
	ReasonUnparsable    RenewReason = "unparsable"
	ReasonOtherCA       RenewReason = "not issued by the cluster CA"
	ReasonWeakSignature RenewReason = "signed with an insecure algorithm"
	ReasonKeyMismatch   RenewReason = "does not match its key"
	ReasonExpired       RenewReason = "expired"
	ReasonExpiresSoon   RenewReason = "expires within 14 days"
	ReasonTooLong       RenewReason = "expires in more than 2 years"
	ReasonForced        RenewReason = "forced"
)

// CertRenewal is the outcome for one node certificate.
type CertRenewal struct {
	// CertFile and KeyFile are the names of the pair, relative to the
	// config root.
	CertFile, KeyFile string
	// Renewed reports that a new certificate was written, for Reason.
	Renewed bool
	Reason  RenewReason
	// NewKey reports that the key was made anew (it was missing or
	// unparsable); otherwise a renewal keeps the key, as PVE does.
	NewKey bool
	// NotAfter and Fingerprint (SHA-256, as PVE shows it) describe the
	// certificate now on disk.
	NotAfter    time.Time
	Fingerprint string
}

// RenewResult describes what RenewNodeCertificates did.
type RenewResult struct {
	NodeName string
	// Certs holds the RSA pair (pve-ssl.pem) and then the ECDSA pair
	// (pve-ssl-ecdsa.pem). After an error it lists the pairs handled
	// before it.
	Certs []CertRenewal
}

// Renewed reports whether any certificate was renewed: the daemons using
// it (pveproxy, pvestatd) must then be reloaded.
func (r *RenewResult) Renewed() bool {
	for _, c := range r.Certs {
		if c.Renewed {
			return true
		}
	}
	return false
}

// RenewNodeCertificates renews the node's certificates (nodes/<node>/
// pve-ssl.pem and pve-ssl-ecdsa.pem), as "pvecm updatecerts" and PVE's
// daily check do, with the cluster CA. A certificate is issued again when
// it or its key is missing or unparsable, when it was not issued by the
// cluster CA, when it does not match its key, when it has expired or
// expires within RenewBefore, when it runs more than two years, and with
// Force. The CA is kept; a missing CA or node directory is an error
// (ErrNotSetUp).
//
// A renewal keeps the node's key, as PVE does, and replaces the
// certificate in one atomic write: the pair on disk matches at every
// moment, and a failure (such as a CA that expires within two weeks)
// leaves the old pair. Only a missing or unparsable key is made anew, and
// written before the certificate: a crash between the two writes leaves
// the new key with the old certificate, which was unusable without its key
// and which the next run replaces (it no longer matches its key). Files
// keep Ensure's modes and groups. Calls are serialised with Ensure by the
// config-root lock "setup".
func RenewNodeCertificates(ctx context.Context, root *pvefs.Root, opts RenewOptions) (*RenewResult, error) {
	o := opts.Options
	o.AdminUser = ""
	e, err := newEnsurer(ctx, root, o)
	if err != nil {
		return nil, err
	}
	unlock, err := root.Lock(ctx, setupLock)
	if err != nil {
		return nil, fmt.Errorf("renew node certificates: %w", err)
	}
	defer unlock()
	res := &RenewResult{NodeName: e.node}
	if err := e.renew(res, opts.Force); err != nil {
		return res, fmt.Errorf("renew node certificates of %s: %w", e.node, err)
	}
	return res, nil
}

// renew checks and renews both pairs, recording each in res.
func (e *ensurer) renew(res *RenewResult, force bool) error {
	dir := "nodes/" + e.node
	if ok, err := e.exists(dir); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s does not exist (the node's first start makes it)", ErrNotSetUp, dir)
	}
	for _, name := range []string{CACertFile, CAKeyFile} {
		if ok, err := e.exists(name); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%w: the cluster CA's %s is missing", ErrNotSetUp, name)
		}
	}
	ca, caKey, _, err := e.ensureCA() // both files exist: this only reads them
	if err != nil {
		return err
	}
	for _, p := range []struct {
		cert, key string
		ec        bool
	}{
		{NodeCertFile(e.node), NodeKeyFile(e.node), false},
		{ECDSACertFile(e.node), ECDSAKeyFile(e.node), true},
	} {
		r, err := e.renewPair(p.cert, p.key, p.ec, ca, caKey, force)
		if err != nil {
			return err
		}
		res.Certs = append(res.Certs, r)
	}
	return nil
}

// renewPair checks one certificate and its key, and issues the certificate
// again (with a new key only if the key is unusable) when it is due.
func (e *ensurer) renewPair(certName, keyName string, ec bool, ca *x509.Certificate,
	caKey func() (crypto.Signer, error), force bool) (CertRenewal, error) {
	r := CertRenewal{CertFile: certName, KeyFile: keyName}
	key, reason, err := e.readNodeKey(keyName)
	if err != nil {
		return r, err
	}
	var cur *x509.Certificate
	if reason == "" {
		if cur, reason, err = e.checkNodeCert(certName, key, ca); err != nil {
			return r, err
		}
	}
	if reason == "" && force {
		reason = ReasonForced
	}
	if reason == "" {
		r.NotAfter, r.Fingerprint = cur.NotAfter, Fingerprint(cur.Raw)
		return r, nil
	}

	newKey := key == nil
	if newKey {
		if key, err = generateNodeKey(keyName, ec); err != nil {
			return r, err
		}
	}
	signer, err := caKey()
	if err != nil {
		return r, err
	}
	der, err := e.issueNodeCert(key.Public(), ca, signer)
	if err != nil {
		return r, fmt.Errorf("issue %s: %w", certName, err)
	}
	// Nothing is written unless the new certificate chains to the CA
	// (a CA key that is not the CA certificate's would fail here).
	c, err := x509.ParseCertificate(der)
	if err == nil {
		err = c.CheckSignatureFrom(ca)
	}
	if err != nil {
		return r, fmt.Errorf("issue %s: %w", certName, err)
	}
	if newKey {
		if err := e.writeKey(keyName, key, false); err != nil {
			return r, err
		}
	}
	if err := e.writeNew(certName, certPEM(der), false); err != nil {
		return r, err
	}
	r.Renewed, r.Reason, r.NewKey = true, reason, newKey
	r.NotAfter, r.Fingerprint = c.NotAfter, Fingerprint(c.Raw)
	e.log.Info("renewed node certificate", "path", certName, "reason", string(reason),
		"new_key", newKey, "not_after", c.NotAfter.UTC().Format(time.RFC3339))
	return r, nil
}

// readNodeKey reads a node key; a missing or unparsable key gives no key
// and the reason, other errors (such as permissions) an error.
func (e *ensurer) readNodeKey(name string) (crypto.Signer, RenewReason, error) {
	data, err := e.root.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ReasonKeyMissing, nil
	}
	if err != nil {
		return nil, "", err
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		e.log.Warn("unparsable node key is replaced", "path", name, "err", err)
		return nil, ReasonKeyUnparsable, nil
	}
	return k, "", nil
}

// checkNodeCert reads the certificate name and returns it with the reason
// it is due for renewal, or "" if it is not.
func (e *ensurer) checkNodeCert(name string, key crypto.Signer, ca *x509.Certificate) (*x509.Certificate, RenewReason, error) {
	data, err := e.root.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ReasonMissing, nil
	}
	if err != nil {
		return nil, "", err
	}
	c, err := ParseCertificate(data)
	if err != nil {
		return nil, ReasonUnparsable, nil
	}
	if !bytes.Equal(c.RawIssuer, ca.RawSubject) {
		return c, ReasonOtherCA, nil
	}
	if err := c.CheckSignatureFrom(ca); err != nil {
		if errors.As(err, new(x509.InsecureAlgorithmError)) {
			return c, ReasonWeakSignature, nil
		}
		return c, ReasonOtherCA, nil
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(c.PublicKey) {
		return c, ReasonKeyMismatch, nil
	}
	switch {
	case c.NotAfter.Before(e.now):
		return c, ReasonExpired, nil
	case c.NotAfter.Before(e.now.Add(RenewBefore)):
		return c, ReasonExpiresSoon, nil
	case !c.NotAfter.Before(e.now.Add(renewAfter)):
		return c, ReasonTooLong, nil
	}
	return c, "", nil
}
