// Package bundle packs, signs, verifies and installs connector bundles: the one file a publisher
// ships and an admin installs.
//
// # Format
//
// A bundle (NAME-VERSION.airlock) is a gzip-compressed POSIX tar archive holding exactly these
// regular files, in this order, and nothing else:
//
//	manifest.yaml    the connector's manifest, with module.sha256 pinning the module (1 MiB at most)
//	module.wasm      the WebAssembly module (MaxModuleSize at most)
//	signature.json   {"algorithm":"ed25519","key_id":"…","signature":"<base64>"} (absent until signed)
//
// Inside a bundle module.path is not used to find the module: module.wasm is the module, and its
// SHA-256 must equal module.sha256.
//
// # Signature
//
// The signature is ed25519 over [SignedMessage]: the context string "airlock-bundle-v1\n"
// followed by the canonical manifest ([Canonical]): the manifest as parsed (defaults applied),
// encoded as JSON with every object's keys sorted, no insignificant whitespace and no HTML
// escaping. Comments and YAML formatting are not signed; everything the host acts on is. The
// manifest pins the module's digest, so the signature covers the module too. key_id is the first
// 16 bytes of the SHA-256 of the public key, in hex ([KeyID]); it only helps find the key.
//
// # Verification
//
// [Read] enforces the archive limits (total size, entry count and size, names: no "..", no
// absolute path, no links or other special entries, no duplicates, no unknown entries); [Verify]
// then parses the manifest, checks the module digest against its pin, and checks the signature
// against the trusted keys: the key that signed must be trusted under the manifest's publisher
// name. Every refusal wraps one of the sentinel errors below, with a sentence saying what to do.
//
//	b, err := bundle.Read(f)                          // limits
//	v, err := bundle.Verify(b, keys, bundle.Options{}) // digest, manifest, signature, trust
//	res, err := bundle.Install(ctx, st, v, time.Now()) // records it; grants nothing
//
// A Bundle is a plain value: not safe for concurrent modification.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Entry names, in the order they are written.
const (
	ManifestEntry  = "manifest.yaml"
	ModuleEntry    = "module.wasm"
	SignatureEntry = "signature.json"
)

// Limits of a bundle. Read refuses anything beyond them before holding it in memory.
const (
	// MaxModuleSize bounds module.wasm (64 MiB).
	MaxModuleSize = 64 << 20
	// MaxSignatureSize bounds signature.json (4 KiB).
	MaxSignatureSize = 4 << 10
	// MaxSize bounds a whole bundle file, compressed or not (MaxModuleSize + 2 MiB for the
	// manifest, the signature and the archive's own headers).
	MaxSize = MaxModuleSize + 2<<20
	// MaxEntries bounds the number of entries (3).
	MaxEntries = 3
)

// Errors every refusal wraps, for callers that branch. The message of the wrapping error says
// what is wrong and what to do.
var (
	// ErrMalformed: not a bundle, truncated, over a limit, or an entry that is not allowed.
	ErrMalformed = errors.New("malformed bundle")
	// ErrInvalidManifest: the manifest does not parse or is not pinned.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrDigestMismatch: module.wasm is not the module the manifest pins.
	ErrDigestMismatch = errors.New("module digest does not match the manifest")
	// ErrUnsigned: the bundle has no signature and unsigned bundles are not allowed.
	ErrUnsigned = errors.New("bundle is not signed")
	// ErrUntrusted: the signature is valid for no trusted key of the manifest's publisher.
	ErrUntrusted = errors.New("bundle is not signed by a trusted key")
)

// Bundle is the content of a bundle file.
type Bundle struct {
	// Manifest is manifest.yaml as written by the publisher.
	Manifest []byte
	// Module is module.wasm.
	Module []byte
	// Signature is signature.json decoded, or nil when the bundle is unsigned.
	Signature *Signature
}

// Signature is signature.json.
type Signature struct {
	// Algorithm is "ed25519".
	Algorithm string `json:"algorithm"`
	// KeyID identifies the public key ([KeyID]); a hint, not trusted.
	KeyID string `json:"key_id"`
	// Value is the signature of [SignedMessage] (base64 in JSON).
	Value []byte `json:"signature"`
}

// FileName is the conventional file name of a bundle: NAME-VERSION.airlock.
func FileName(m *manifest.Manifest) string { return m.Name + "-" + m.Version + ".airlock" }

// Pack makes an unsigned bundle from a manifest and its module. If the manifest does not pin the
// module yet (a source manifest), Pack pins it, as `airlock plugin build` stamps manifests; if it
// pins a different digest, Pack refuses. The manifest must parse.
func Pack(manifestYAML, module []byte) (*Bundle, error) {
	if len(module) > MaxModuleSize {
		return nil, fmt.Errorf("%w: the module is %d bytes, more than the %d a bundle may hold", ErrMalformed, len(module), MaxModuleSize)
	}
	m, err := manifest.Parse(ManifestEntry, manifestYAML)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if m.Module.SHA256 == "" {
		if manifestYAML, err = pin(manifestYAML, digest(module)); err != nil {
			return nil, err
		}
		if m, err = manifest.Parse(ManifestEntry, manifestYAML); err != nil {
			return nil, fmt.Errorf("%w: after pinning the module: %w", ErrInvalidManifest, err)
		}
	}
	if err := manifest.VerifyModule(m, module); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	return &Bundle{Manifest: manifestYAML, Module: module}, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Write writes b as a bundle file. The archive is deterministic: fixed modes, owners and times.
func (b *Bundle) Write(w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	put := func(name string, data []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)),
			ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(ManifestEntry, b.Manifest); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := put(ModuleEntry, b.Module); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if b.Signature != nil {
		sig, err := json.Marshal(b.Signature)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if err := put(SignatureEntry, append(sig, '\n')); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Bytes returns b as a bundle file.
func (b *Bundle) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Read reads a bundle file, enforcing the limits of the format: at most MaxSize bytes
// compressed and uncompressed, at most MaxEntries entries, only regular files named
// manifest.yaml, module.wasm and signature.json, each at most once and within its size limit.
// It does not verify anything else; see [Verify].
func Read(r io.Reader) (*Bundle, error) {
	zr, err := gzip.NewReader(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip-compressed archive (%v): is this an .airlock bundle made by 'airlock plugin pack'?", ErrMalformed, err)
	}
	zr.Multistream(false)
	// The uncompressed stream is bounded too: a small file must not inflate without limit.
	tr := tar.NewReader(io.LimitReader(zr, MaxSize+1))
	b := &Bundle{}
	seen := map[string]bool{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the archive is damaged or truncated (%v): download or copy it again", ErrMalformed, err)
		}
		if n >= MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries: a bundle holds only %s, %s and %s", ErrMalformed, MaxEntries, ManifestEntry, ModuleEntry, SignatureEntry)
		}
		if err := checkEntry(hdr); err != nil {
			return nil, err
		}
		if seen[hdr.Name] {
			return nil, fmt.Errorf("%w: entry %q appears twice: a bundle holds each file once", ErrMalformed, hdr.Name)
		}
		seen[hdr.Name] = true
		limit := int64(MaxModuleSize)
		switch hdr.Name {
		case ManifestEntry:
			limit = manifest.MaxFileSize
		case SignatureEntry:
			limit = MaxSignatureSize
		}
		if hdr.Size > limit {
			return nil, fmt.Errorf("%w: entry %q is %d bytes, more than the %d allowed", ErrMalformed, hdr.Name, hdr.Size, limit)
		}
		data, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%w: the archive is damaged or truncated (%v): download or copy it again", ErrMalformed, err)
		}
		if int64(len(data)) != hdr.Size {
			return nil, fmt.Errorf("%w: entry %q is truncated: download or copy the bundle again", ErrMalformed, hdr.Name)
		}
		switch hdr.Name {
		case ManifestEntry:
			b.Manifest = data
		case ModuleEntry:
			b.Module = data
		case SignatureEntry:
			var s Signature
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&s); err != nil {
				return nil, fmt.Errorf("%w: %s is not valid (%v): sign the bundle again with 'airlock plugin sign'", ErrMalformed, SignatureEntry, err)
			}
			b.Signature = &s
		}
	}
	// Drain to the end of the gzip stream so its checksum is verified: a truncated or altered
	// file fails here even when the tar layer looked complete.
	if _, err := io.Copy(io.Discard, io.LimitReader(zr, MaxSize)); err != nil {
		return nil, fmt.Errorf("%w: the archive is damaged or truncated (%v): download or copy it again", ErrMalformed, err)
	}
	if err := zr.Close(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case !seen[ManifestEntry]:
		return nil, fmt.Errorf("%w: no %s in the archive: make bundles with 'airlock plugin pack'", ErrMalformed, ManifestEntry)
	case !seen[ModuleEntry]:
		return nil, fmt.Errorf("%w: no %s in the archive: make bundles with 'airlock plugin pack'", ErrMalformed, ModuleEntry)
	}
	return b, nil
}

// checkEntry refuses names and types a bundle never holds, naming the reason.
func checkEntry(hdr *tar.Header) error {
	name := hdr.Name
	switch {
	case name == "" || strings.ContainsRune(name, 0):
		return fmt.Errorf("%w: an entry has an empty or NUL-bearing name", ErrMalformed)
	case path.IsAbs(name) || strings.HasPrefix(name, `\`) || len(name) > 1 && name[1] == ':':
		return fmt.Errorf("%w: entry %q has an absolute path: a bundle holds only top-level files", ErrMalformed, name)
	case hasDotDot(name):
		return fmt.Errorf("%w: entry %q has a path-traversing name (..): refusing it", ErrMalformed, name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeSymlink, tar.TypeLink:
		return fmt.Errorf("%w: entry %q is a link (to %q): a bundle holds only regular files", ErrMalformed, name, hdr.Linkname)
	default:
		return fmt.Errorf("%w: entry %q is not a regular file (type %q): a bundle holds only regular files", ErrMalformed, name, hdr.Typeflag)
	}
	switch name {
	case ManifestEntry, ModuleEntry, SignatureEntry:
		return nil
	}
	return fmt.Errorf("%w: unexpected entry %q: a bundle holds only %s, %s and %s", ErrMalformed, name, ManifestEntry, ModuleEntry, SignatureEntry)
}

// hasDotDot reports whether name has a ".." element, with either separator.
func hasDotDot(name string) bool {
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return true
		}
	}
	return false
}
