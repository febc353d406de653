package ticket

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// AuthKeyBits is the size of the auth keys PVE generates.
const AuthKeyBits = 2048

// ParsePrivateKey parses the first PEM block of data as an RSA private key
// in PKCS #1 ("BEGIN RSA PRIVATE KEY", written by PVE's key rotation) or
// PKCS #8 ("BEGIN PRIVATE KEY", written by openssl genrsa on OpenSSL 3).
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block found")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse private key: %T is not an RSA key", k)
		}
		return rk, nil
	default:
		return nil, fmt.Errorf("parse private key: unsupported PEM block %q", block.Type)
	}
}

// ParsePublicKey parses the first PEM block of data as an RSA public key in
// SubjectPublicKeyInfo form ("BEGIN PUBLIC KEY", PVE's authkey.pub) or
// PKCS #1 form ("BEGIN RSA PUBLIC KEY").
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse public key: no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: %T is not an RSA key", k)
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("parse public key: unsupported PEM block %q", block.Type)
	}
}

// GenerateAuthKey creates a 2048-bit RSA key pair and returns it in the
// formats PVE's initial setup writes: the private key as PKCS #8
// ("BEGIN PRIVATE KEY") and the public key as SubjectPublicKeyInfo
// ("BEGIN PUBLIC KEY").
func GenerateAuthKey() (privPEM, pubPEM []byte, err error) {
	k, err := rsa.GenerateKey(rand.Reader, AuthKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate auth key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("generate auth key: %w", err)
	}
	pubPEM, err = MarshalPublicKey(&k.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("generate auth key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pubPEM, nil
}

// MarshalPublicKey encodes key as a "BEGIN PUBLIC KEY" (SubjectPublicKeyInfo)
// PEM block, the form of authkey.pub and authkey.pub.old.
func MarshalPublicKey(key *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
