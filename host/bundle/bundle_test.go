package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// A tiny valid wasm header stands in for a module where nothing compiles it.
var module = []byte("\x00asm\x01\x00\x00\x00tiny test module")

const sourceManifest = `# a comment that is not signed
abi: 1
name: weather
version: 1.0.0
publisher: acme
description: Weather forecasts.
module:
  path: weather.wasm
credentials:
  - name: api_key
    kind: bearer
    hosts: [api.weather.example]
network:
  - host: api.weather.example
    path_prefix: /v1/
    methods: [GET]
tools:
  - name: forecast
    description: The forecast for a city.
    scopes: [read]
    input_schema:
      type: object
      required: [city]
      properties:
        city: {type: string, examples: [Oslo]}
`

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// signedBundle packs sourceManifest (edited by edit) with mod and signs it with key.
func signedBundle(t *testing.T, key ed25519.PrivateKey, mod []byte, edit func(string) string) []byte {
	t.Helper()
	src := sourceManifest
	if edit != nil {
		src = edit(src)
	}
	b, err := bundle.Pack([]byte(src), mod)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	if err := b.Sign(key); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	data, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// install reads, verifies and installs data the way `airlock plugin install` does.
func install(ctx context.Context, st *store.Store, data []byte, opts bundle.Options) (*bundle.Result, error) {
	b, err := bundle.Read(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	keys, err := bundle.TrustedKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	v, err := bundle.Verify(b, keys, opts)
	if err != nil {
		return nil, err
	}
	return bundle.Install(ctx, st, v, time.Unix(1700000000, 0))
}

func trust(t *testing.T, st *store.Store, name string, key ed25519.PrivateKey) {
	t.Helper()
	if err := st.PutTrustKey(context.Background(), store.TrustKey{Name: name, PublicKey: pub(key), Added: time.Now(), AddedBy: "test"}); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	st := openStore(t)
	trust(t, st, "acme", key)
	data := signedBundle(t, key, module, nil)

	res, err := install(ctx, st, data, bundle.Options{})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	sum := sha256.Sum256(module)
	want := hex.EncodeToString(sum[:])
	in := res.Installed
	if in.Name != "weather" || in.Version != "1.0.0" || in.Publisher != "acme" || in.Digest != want || in.Status != bundle.StatusActive || in.Unsigned {
		t.Errorf("installed = %+v", in)
	}
	got, err := st.GetInstalled(ctx, "weather", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Module, module) || got.Digest != want || got.Status != bundle.StatusActive {
		t.Errorf("stored = %s %s %s", got.Name, got.Digest, got.Status)
	}
	// The stored manifest is pinned and parses.
	m, err := manifest.Parse("m.yaml", got.Manifest)
	if err != nil || m.Module.SHA256 != want {
		t.Errorf("stored manifest: %v, sha256 %q", err, m.Module.SHA256)
	}

	// Installing the same bytes again changes nothing.
	res, err = install(ctx, st, data, bundle.Options{})
	if err != nil || !res.AlreadyInstalled {
		t.Errorf("second install = %+v, %v; want AlreadyInstalled", res, err)
	}
	// The same version with another module is a conflict.
	other := signedBundle(t, key, append(bytes.Clone(module), 'x'), nil)
	if _, err := install(ctx, st, other, bundle.Options{}); !errors.Is(err, bundle.ErrConflict) {
		t.Errorf("same version, other module: %v, want ErrConflict", err)
	}
}

// TestTampering is the attacker's list: each bundle is refused with a reason, and nothing is
// installed.
func TestTampering(t *testing.T) {
	key := newKey(t)
	stranger := newKey(t)
	good := signedBundle(t, key, module, nil)

	// rebuild rewrites the archive of a good bundle, entry by entry.
	rebuild := func(t *testing.T, edit func(name string, data []byte) (string, []byte, byte)) []byte {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			var data bytes.Buffer
			data.ReadFrom(tr)
			name, d, typ := edit(hdr.Name, data.Bytes())
			if name == "" {
				continue
			}
			h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(d))}
			if typ != tar.TypeReg {
				h.Size, h.Linkname, d = 0, "/etc/passwd", nil
			}
			tw.WriteHeader(h)
			tw.Write(d)
		}
		tw.Close()
		zw.Close()
		return buf.Bytes()
	}
	keep := func(name string, d []byte) (string, []byte, byte) { return name, d, tar.TypeReg }

	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want error
		// reason is a fragment the refusal must contain, so the admin learns what happened.
		reason string
	}{
		{"changed byte in the module", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ModuleEntry {
					d = bytes.Clone(d)
					d[len(d)-1] ^= 1
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrDigestMismatch, "sha256"},
		{"changed manifest field", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ManifestEntry {
					d = bytes.Replace(d, []byte("methods: [GET]"), []byte("methods: [GET, POST]"), 1)
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrUntrusted, "modified after signing"},
		{"changed manifest host", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ManifestEntry {
					d = bytes.ReplaceAll(d, []byte("api.weather.example"), []byte("evil.example"))
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrUntrusted, "modified after signing"},
		{"signature by an untrusted key", func(t *testing.T) []byte {
			return signedBundle(t, stranger, module, nil)
		}, bundle.ErrUntrusted, "modified after signing, or signed by another key"},
		{"trusted key of another publisher", func(t *testing.T) []byte {
			return signedBundle(t, key, module, func(s string) string {
				return strings.Replace(s, "publisher: acme", "publisher: airlock-dev", 1)
			})
		}, bundle.ErrUntrusted, "vouches only for its own publisher"},
		{"unsigned", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					return "", nil, 0
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrUnsigned, "--allow-unsigned"},
		{"manifest names a different digest", func(t *testing.T) []byte {
			return signedBundle(t, key, module, func(s string) string {
				return strings.Replace(s, "  path: weather.wasm", "  path: weather.wasm\n  sha256: \""+strings.Repeat("ab", 32)+"\"", 1)
			})
		}, nil, "pins a different"}, // Pack refuses to make it; see below
		{"truncated", func(t *testing.T) []byte { return good[:len(good)*2/3] }, bundle.ErrMalformed, "truncated"},
		{"truncated gzip trailer", func(t *testing.T) []byte { return good[:len(good)-4] }, bundle.ErrMalformed, "truncated"},
		{"not gzip", func(t *testing.T) []byte { return []byte("PK\x03\x04 a zip file") }, bundle.ErrMalformed, "not a gzip"},
		{"path-traversing entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ModuleEntry {
					n = "../../etc/module.wasm"
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "path-traversing"},
		{"absolute entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ModuleEntry {
					n = "/tmp/module.wasm"
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "absolute path"},
		{"symlink entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					return n, d, tar.TypeSymlink
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "is a link"},
		{"hard link entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					return n, d, tar.TypeLink
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "is a link"},
		{"duplicate entry", func(t *testing.T) []byte {
			first := true
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry && first {
					first = false
					return bundle.ManifestEntry, []byte("abi: 1\n"), tar.TypeReg
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "appears twice"},
		{"unknown entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					return "payload.sh", d, tar.TypeReg
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "unexpected entry"},
		{"oversized manifest entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ManifestEntry {
					d = append(bytes.Clone(d), bytes.Repeat([]byte("#"), manifest.MaxFileSize)...)
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "more than the"},
		{"oversized module entry", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.ModuleEntry {
					d = make([]byte, bundle.MaxModuleSize+1) // zeros: compresses to ~64 KiB
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "more than the"},
		{"signature with unknown fields", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					d = []byte(`{"algorithm":"ed25519","key_id":"x","signature":"AA==","trusted":true}`)
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrMalformed, "not valid"},
		{"other algorithm", func(t *testing.T) []byte {
			return rebuild(t, func(n string, d []byte) (string, []byte, byte) {
				if n == bundle.SignatureEntry {
					d = bytes.Replace(d, []byte(`"ed25519"`), []byte(`"none"`), 1)
				}
				return n, d, tar.TypeReg
			})
		}, bundle.ErrUntrusted, "only ed25519"},
		{"unchanged", func(t *testing.T) []byte { return rebuild(t, keep) }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			trust(t, st, "acme", key)
			if tt.name == "manifest names a different digest" {
				// A publisher's tools refuse to make such a bundle ...
				_, err := bundle.Pack([]byte(strings.Replace(sourceManifest, "  path: weather.wasm", "  path: weather.wasm\n  sha256: \""+strings.Repeat("ab", 32)+"\"", 1)), module)
				if !errors.Is(err, bundle.ErrDigestMismatch) {
					t.Fatalf("Pack with another digest: %v, want ErrDigestMismatch", err)
				}
				// ... so forge one: sign a manifest pinning another module, ship this one.
				other := append(bytes.Clone(module), "other"...)
				signed := signedBundle(t, key, other, nil)
				b, err := bundle.Read(bytes.NewReader(signed))
				if err != nil {
					t.Fatal(err)
				}
				b.Module = module
				data, _ := b.Bytes()
				_, err = install(ctx, st, data, bundle.Options{})
				if !errors.Is(err, bundle.ErrDigestMismatch) || !strings.Contains(err.Error(), "but the manifest pins") {
					t.Errorf("install = %v, want ErrDigestMismatch", err)
				}
				assertNothingInstalled(t, st)
				return
			}
			_, err := install(ctx, st, tt.data(t), bundle.Options{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("install: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("install = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("refusal %q does not say %q", err, tt.reason)
			}
			assertNothingInstalled(t, st)
		})
	}
}

func assertNothingInstalled(t *testing.T, st *store.Store) {
	t.Helper()
	list, err := st.ListInstalled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("a refused bundle left %d installed records: %+v", len(list), list[0].Name)
	}
}

func TestAllowUnsigned(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	b, err := bundle.Pack([]byte(sourceManifest), module)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := b.Bytes()
	res, err := install(ctx, st, data, bundle.Options{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetInstalled(ctx, "weather", "1.0.0")
	if err != nil || !got.Unsigned || !res.Installed.Unsigned {
		t.Errorf("stored %+v (%v): want Unsigned", got.Unsigned, err)
	}
	// Even so, a module that does not match its pin is refused.
	b.Module = append(bytes.Clone(module), 1)
	data, _ = b.Bytes()
	if _, err := install(ctx, openStore(t), data, bundle.Options{AllowUnsigned: true}); !errors.Is(err, bundle.ErrDigestMismatch) {
		t.Errorf("unsigned with a wrong module: %v, want ErrDigestMismatch", err)
	}
}

// The signature covers what the host acts on, not the YAML's formatting.
func TestCanonicalIgnoresFormatting(t *testing.T) {
	key := newKey(t)
	data := signedBundle(t, key, module, nil)
	b, err := bundle.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b.Manifest = bytes.Replace(b.Manifest, []byte("# a comment that is not signed"), []byte("# another comment\n# and more"), 1)
	if _, err := bundle.Verify(b, []bundle.Key{{Name: "acme", PublicKey: pub(key)}}, bundle.Options{}); err != nil {
		t.Errorf("a comment changed: %v", err)
	}
	m1, _ := manifest.Parse("a", []byte(sourceManifest))
	m2, _ := manifest.Parse("b", []byte(strings.Replace(sourceManifest, "methods: [GET]", "methods:\n      - GET", 1)))
	c1, _ := bundle.Canonical(m1)
	c2, _ := bundle.Canonical(m2)
	if !bytes.Equal(c1, c2) {
		t.Errorf("canonical forms differ:\n%s\n%s", c1, c2)
	}
	if !bytes.HasPrefix(c1, []byte(`{"abi":1,"credentials":[{"hosts":["api.weather.example"],"kind":"bearer","name":"api_key"}],"description":`)) {
		t.Errorf("canonical form is not sorted-key JSON: %.120s", c1)
	}
}

func TestUpgradePolicy(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	st := openStore(t)
	trust(t, st, "acme", key)
	version := func(v string, edit func(string) string) func(string) string {
		return func(s string) string {
			s = strings.Replace(s, "version: 1.0.0", "version: "+v, 1)
			if edit != nil {
				s = edit(s)
			}
			return s
		}
	}
	mod := func(n int) []byte { return append(bytes.Clone(module), byte(n)) }
	if _, err := install(ctx, st, signedBundle(t, key, mod(1), nil), bundle.Options{}); err != nil {
		t.Fatal(err)
	}
	// 1.1.0 asks for nothing more (a new description): active, 1.0.0 retired.
	res, err := install(ctx, st, signedBundle(t, key, mod(2), version("1.1.0", func(s string) string {
		return strings.Replace(s, "Weather forecasts.", "Better weather forecasts.", 1)
	})), bundle.Options{})
	if err != nil || res.Installed.Status != bundle.StatusActive || res.Previous != "1.0.0" || len(res.Changes) != 0 {
		t.Fatalf("1.1.0: %+v, %v", res, err)
	}
	if old, _ := st.GetInstalled(ctx, "weather", "1.0.0"); old.Status != bundle.StatusRetired {
		t.Errorf("1.0.0 status = %s, want retired", old.Status)
	}
	// 1.2.0 asks for POST: pending, 1.1.0 stays active.
	res, err = install(ctx, st, signedBundle(t, key, mod(3), version("1.2.0", func(s string) string {
		return strings.Replace(s, "methods: [GET]", "methods: [GET, POST]", 1)
	})), bundle.Options{})
	if err != nil || res.Installed.Status != bundle.StatusPending || len(res.Changes) != 1 || res.Changes[0].Kind != manifest.ChangeHost {
		t.Fatalf("1.2.0: %+v, %v", res, err)
	}
	if a, _ := st.ActiveInstalled(ctx, "weather"); a.Version != "1.1.0" {
		t.Errorf("active = %s, want 1.1.0", a.Version)
	}
	// 0.9.0 (a downgrade) asks for nothing more but stays pending.
	res, err = install(ctx, st, signedBundle(t, key, mod(4), version("0.9.0", nil)), bundle.Options{})
	if err != nil || res.Installed.Status != bundle.StatusPending || !res.Downgrade {
		t.Fatalf("0.9.0: %+v, %v", res, err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0}, {"1.0.10", "1.0.9", 1}, {"1.2.0", "1.10.0", -1},
		{"1.0.0-rc.1", "1.0.0", -1}, {"1.0.0-rc.2", "1.0.0-rc.10", -1}, {"2.0.0", "1.99.99", 1},
		{"1.0.0+build.5", "1.0.0", 0}, {"1.0.0-alpha", "1.0.0-alpha.1", -1},
	} {
		if got := bundle.CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	privPEM, pubPEM, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := bundle.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bundle.ParsePublicKey(pubPEM)
	if err != nil || !p.Equal(priv.Public()) {
		t.Fatalf("ParsePublicKey = %v, %v", p, err)
	}
	if _, err := bundle.ParsePublicKey(privPEM); err == nil || strings.Contains(err.Error(), string(privPEM[30:60])) {
		t.Errorf("a private key given as public: %v", err)
	}
	if _, err := bundle.ParsePrivateKey(pubPEM); err == nil {
		t.Error("a public key parsed as private")
	}
	if !bytes.Equal(bundle.MarshalPublicKey(p), pubPEM) {
		t.Error("MarshalPublicKey does not round-trip")
	}
}

func FuzzRead(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	b, _ := bundle.Pack([]byte(sourceManifest), module)
	unsigned, _ := b.Bytes()
	b.Sign(priv)
	signed, _ := b.Bytes()
	f.Add(unsigned)
	f.Add(signed)
	f.Add([]byte{0x1f, 0x8b, 0x08, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, bundle.ErrMalformed) {
				t.Fatalf("Read error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(b.Manifest) > manifest.MaxFileSize || len(b.Module) > bundle.MaxModuleSize {
			t.Fatal("Read accepted an entry over its limit")
		}
		_, _ = bundle.Verify(b, []bundle.Key{{Name: "acme", PublicKey: pub(priv)}}, bundle.Options{})
	})
}
