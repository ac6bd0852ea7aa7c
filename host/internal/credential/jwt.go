package credential

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// AssertionLifetime is the lifetime of a JWT bearer assertion (RFC 7523 §3: short; Salesforce
// allows at most 3 minutes).
const AssertionLifetime = 3 * time.Minute

// signer signs JWT bearer assertions with RS256 (RSA key) or ES256 (EC P-256 key).
type signer struct {
	alg string
	key crypto.Signer
}

// newSigner parses a PEM private key: PKCS #1 or PKCS #8 RSA (at least 2048 bits), SEC 1 or
// PKCS #8 EC P-256. Errors never quote the key.
func newSigner(pemKey secret.Value) (*signer, error) {
	block, _ := pem.Decode([]byte(pemKey.Expose()))
	if block == nil {
		return nil, errors.New("it is not a PEM block (it should start with -----BEGIN PRIVATE KEY-----)")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, errors.New("the PEM block is not a private key (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY; an encrypted key must be decrypted first)")
	}
	if err != nil {
		return nil, errors.New("the private key does not parse; check that the file holds an unencrypted RSA or EC P-256 key")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("the RSA key is shorter than 2048 bits")
		}
		return &signer{alg: "RS256", key: k}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("the EC key is not on curve P-256 (ES256)")
		}
		return &signer{alg: "ES256", key: k}, nil
	}
	return nil, errors.New("the key is neither RSA nor EC P-256")
}

// assertion returns a signed JWT: iss=clientID, sub=username, aud, iat=now, exp=now+3 min, and a
// random jti so a server can refuse replays.
func (s *signer) assertion(clientID, username, aud string, now time.Time) (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	header, _ := json.Marshal(map[string]string{"alg": s.alg, "typ": "JWT"})
	claims, err := json.Marshal(map[string]any{
		"iss": clientID, "sub": username, "aud": aud,
		"iat": now.Unix(), "exp": now.Add(AssertionLifetime).Unix(), "jti": hex.EncodeToString(jti[:]),
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var r, ss []byte
		rr, sv, e := ecdsa.Sign(rand.Reader, k, sum[:])
		err = e
		if e == nil {
			r, ss = make([]byte, 32), make([]byte, 32)
			rr.FillBytes(r)
			sv.FillBytes(ss)
			sig = append(r, ss...) // RFC 7518 §3.4: R || S, 32 bytes each
		}
	}
	if err != nil {
		return "", errors.New("signing the JWT bearer assertion failed")
	}
	return signing + "." + enc.EncodeToString(sig), nil
}
