package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Algorithm is the only signature algorithm: ed25519 (RFC 8032).
const Algorithm = "ed25519"

// signingContext prefixes the signed message, so a bundle signature can never be replayed as a
// signature of anything else made with the same key.
const signingContext = "airlock-bundle-v1\n"

// Key is a trusted publisher key: bundles whose manifest names publisher Name must be signed by
// PublicKey.
type Key struct {
	Name      string
	PublicKey ed25519.PublicKey
}

// KeyID identifies a public key: the first 16 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// GenerateKey returns a new key pair as PEM: the private key (PKCS #8, "PRIVATE KEY") and the
// public key (PKIX, "PUBLIC KEY"), the formats openssl reads and writes
// (openssl genpkey -algorithm ed25519).
func GenerateKey() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKey reads an ed25519 private key in PEM (PKCS #8). The error never quotes the key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM private key (-----BEGIN PRIVATE KEY-----): make one with 'airlock plugin keygen'")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the private key does not parse as PKCS #8: make one with 'airlock plugin keygen'")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %T, not ed25519: make one with 'airlock plugin keygen'", k)
	}
	return priv, nil
}

// ParsePublicKey reads an ed25519 public key in PEM (PKIX, "PUBLIC KEY").
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM public key (-----BEGIN PUBLIC KEY-----): use the .pub file 'airlock plugin keygen' wrote")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("a PEM %q block, not a PUBLIC KEY: use the .pub file, never the private key", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the public key does not parse: %v", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the public key is %T, not ed25519", k)
	}
	return pub, nil
}

// MarshalPublicKey encodes pub as PEM (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Canonical returns the canonical form of a parsed manifest: its JSON encoding (defaults applied)
// with every object's keys sorted, numbers as written, no insignificant whitespace and no HTML
// escaping. Two manifests that the host would act on identically have the same canonical form,
// whatever their YAML formatting and comments.
func Canonical(m *manifest.Manifest) ([]byte, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("bundle: canonical manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("bundle: canonical manifest: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps encode with sorted keys
		return nil, fmt.Errorf("bundle: canonical manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// SignedMessage is what a bundle's signature signs: "airlock-bundle-v1\n" followed by the
// canonical manifest.
func SignedMessage(m *manifest.Manifest) ([]byte, error) {
	c, err := Canonical(m)
	if err != nil {
		return nil, err
	}
	return append([]byte(signingContext), c...), nil
}

// Sign signs b with key, replacing any earlier signature. The manifest must parse and pin the
// module b holds: a publisher cannot sign a bundle that would not verify.
func (b *Bundle) Sign(key ed25519.PrivateKey) error {
	m, err := b.check()
	if err != nil {
		return err
	}
	msg, err := SignedMessage(m)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	b.Signature = &Signature{Algorithm: Algorithm, KeyID: KeyID(pub), Value: ed25519.Sign(key, msg)}
	return nil
}

// check parses the manifest and checks the module against its pin.
func (b *Bundle) check() (*manifest.Manifest, error) {
	m, err := manifest.Parse(ManifestEntry, b.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if err := manifest.VerifyModule(m, b.Module); err != nil {
		if errors.Is(err, manifest.ErrUnpinned) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	return m, nil
}

// Options relax verification. The zero value is the strict default.
type Options struct {
	// AllowUnsigned accepts a bundle that is unsigned or not signed by a trusted key, for local
	// development; the result says Unsigned. The manifest must still parse and pin the module.
	AllowUnsigned bool
}

// Verified is a bundle that passed [Verify].
type Verified struct {
	Manifest     *manifest.Manifest
	ManifestYAML []byte
	Module       []byte
	// Digest is the module's SHA-256 in hex (equal to Manifest.Module.SHA256).
	Digest string
	// Publisher is the manifest's publisher; when signed, the name of the trusted key that
	// signed it (the same, by construction).
	Publisher string
	// KeyID identifies the key that signed; "" when Unsigned.
	KeyID string
	// Unsigned is true when the bundle was accepted without a trusted signature
	// (Options.AllowUnsigned).
	Unsigned bool
	// Reason says why an Unsigned bundle would have been refused.
	Reason string
}

// Verify checks a bundle read by [Read]: the manifest parses and pins module.wasm's digest, and
// the signature verifies under a key trusted for the manifest's publisher (keys[i].Name equal to
// the manifest's publisher). A valid signature by a key trusted under another name is refused:
// a key vouches only for its own publisher name.
func Verify(b *Bundle, keys []Key, opts Options) (*Verified, error) {
	m, err := b.check()
	if err != nil {
		return nil, err
	}
	v := &Verified{Manifest: m, ManifestYAML: b.Manifest, Module: b.Module, Digest: m.Module.SHA256, Publisher: m.Publisher}
	keyID, trustErr := verifySignature(b, m, keys)
	if trustErr == nil {
		v.KeyID = keyID
		return v, nil
	}
	if !opts.AllowUnsigned {
		return nil, trustErr
	}
	v.Unsigned, v.Reason = true, trustErr.Error()
	return v, nil
}

func verifySignature(b *Bundle, m *manifest.Manifest, keys []Key) (string, error) {
	s := b.Signature
	if s == nil {
		return "", fmt.Errorf("%w: %s %s has no %s: ask the publisher for a signed bundle, or sign it with 'airlock plugin sign' (--allow-unsigned for local development only)", ErrUnsigned, m.Name, m.Version, SignatureEntry)
	}
	if s.Algorithm != Algorithm {
		return "", fmt.Errorf("%w: signature algorithm %q: only %s is accepted", ErrUntrusted, s.Algorithm, Algorithm)
	}
	msg, err := SignedMessage(m)
	if err != nil {
		return "", err
	}
	var elsewhere []string
	for _, k := range keys {
		if len(k.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(k.PublicKey, msg, s.Value) {
			continue
		}
		if k.Name == m.Publisher {
			return KeyID(k.PublicKey), nil
		}
		elsewhere = append(elsewhere, k.Name)
	}
	if len(elsewhere) > 0 {
		return "", fmt.Errorf("%w: the manifest says publisher %q but the key that signed it is trusted as %s: a key vouches only for its own publisher name", ErrUntrusted, m.Publisher, strings.Join(elsewhere, ", "))
	}
	trusted := false
	for _, k := range keys {
		trusted = trusted || k.Name == m.Publisher
	}
	if !trusted {
		return "", fmt.Errorf("%w: no key is trusted for publisher %q (the bundle was signed by key %s): if you trust this publisher, add their public key with 'airlock trust add %s KEYFILE'", ErrUntrusted, m.Publisher, s.KeyID, m.Publisher)
	}
	return "", fmt.Errorf("%w: the signature does not verify under the key trusted for publisher %q: the bundle was modified after signing, or signed by another key (%s); get the bundle again from the publisher", ErrUntrusted, m.Publisher, s.KeyID)
}

// pin sets module.sha256 in a manifest's YAML, keeping its layout and comments.
func pin(src []byte, sha string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: not a YAML mapping", ErrInvalidManifest)
	}
	top := doc.Content[0]
	module := lookup(top, "module")
	if module == nil || module.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: no module section", ErrInvalidManifest)
	}
	if v := lookup(module, "sha256"); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", sha, yaml.DoubleQuotedStyle
	} else {
		module.Content = append(module.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: "sha256"},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: sha, Style: yaml.DoubleQuotedStyle})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	return buf.Bytes(), nil
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
