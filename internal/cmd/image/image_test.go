package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// canary is a DSN password and master key in the environment of the build, as on a
// developer's machine with the service's settings exported; it must reach no layer.
const canary = "Canary-image-pw-7f3a"

// The image as a user gets it with 'make image': it loads, runs as a non-root user from a
// static binary with no secret of the build machine in any layer, and the binary taken out of
// it runs 'airlock --version' and 'airlock demo' with no Go toolchain on PATH.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds airlock and the demo plugins")
	}
	t.Setenv("AIRLOCK_STATE", "postgres://airlock:"+canary+"@db:5432/airlock")
	t.Setenv("AIRLOCK_MASTER_KEY", canary)
	dir := t.TempDir()
	out := filepath.Join(dir, "airlock.tar")
	res, err := Build(context.Background(), Options{Out: out, OCI: filepath.Join(dir, "oci"), Version: "v0.0.0-test", Commit: "0123456789abcdef", CABundle: caBundle(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: %d layers, %.1f MiB compressed", res.Tag, res.Layers, float64(res.CompressedBytes)/(1<<20))

	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User == "" || c.User == "root" || strings.HasPrefix(c.User, "0:") || c.User == "0" {
		t.Errorf("image user = %q, want a non-root UID", c.User)
	}
	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != BinaryPath || cf.OS != "linux" {
		t.Errorf("entrypoint = %q on %s, want [%s] on linux", c.Entrypoint, cf.OS, BinaryPath)
	}
	if _, ok := c.Volumes[DataDir]; !ok || c.WorkingDir != DataDir || cf.Config.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" {
		t.Errorf("config = %+v, want the %s volume as working directory and the commit label", c, DataDir)
	}
	raw, _ := json.Marshal(cf)
	if bytes.Contains(raw, []byte(canary)) {
		t.Errorf("the image config holds the canary: %s", raw)
	}

	// The OCI layout holds the same image.
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := idx.IndexManifest(); err != nil || len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != res.Digest {
		t.Errorf("OCI layout index = %+v %v, want the one image %s", m, err, res.Digest)
	}

	root := filepath.Join(dir, "rootfs")
	files := extract(t, img, root)
	for name, h := range files {
		if strings.Contains(name, "..") || (h.Uid == 0 && h.Typeflag == tar.TypeReg && h.Mode&0o022 != 0) {
			t.Errorf("%s: unsafe entry (mode %o, uid %d)", name, h.Mode, h.Uid)
		}
	}
	if h := files["data"]; h == nil || h.Uid != UID {
		t.Errorf("/data = %+v, want a directory owned by the image user", h)
	}
	bin := filepath.Join(root, BinaryPath)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked; the image has no libc", BinaryPath)
		}
	}
	f.Close()

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		// The image's environment, its paths under the extracted root, and no Go on PATH.
		cmd.Env = []string{"PATH=/nonexistent", "HOME=" + cmd.Dir, "AIRLOCK_DEMO_PLUGINS=" + filepath.Join(root, DemoDir)}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("airlock %s from the image: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if v := run("--version"); !strings.HasPrefix(v, "airlock v0.0.0-test (commit 0123456789abcdef") {
		t.Errorf("--version from the image = %q", v)
	}
	demo := run("demo", "--dir", filepath.Join(t.TempDir(), "demo"))
	for _, want := range []string{"prebuilt", "✔ ok", "egress_denied"} {
		if !strings.Contains(demo, want) {
			t.Errorf("demo from the image lacks %q:\n%s", want, demo)
		}
	}
}

// extract unpacks the image's layers under root (regular files and directories; the image has
// nothing else) after scanning every entry for the canary, and returns the headers by path.
func extract(t *testing.T, img v1.Image, root string) map[string]*tar.Header {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := path.Clean(h.Name)
			files[name] = h
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(canary)) || strings.Contains(h.Name, canary) {
				t.Errorf("layer entry %s holds the canary from the build's environment", h.Name)
			}
			dst := filepath.Join(root, filepath.FromSlash(name))
			switch h.Typeflag {
			case tar.TypeDir:
				os.MkdirAll(dst, 0o755)
			case tar.TypeReg:
				os.MkdirAll(filepath.Dir(dst), 0o755)
				if err := os.WriteFile(dst, data, os.FileMode(h.Mode)&0o755|0o200); err != nil {
					t.Fatal(err)
				}
			default:
				t.Errorf("layer entry %s has type %c; the image holds only files and directories", h.Name, h.Typeflag)
			}
		}
		rc.Close()
	}
	return files
}

// caBundle returns the system CA bundle, or a stand-in where the machine has none.
func caBundle(t *testing.T) string {
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		return "/etc/ssl/certs/ca-certificates.crt"
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(p, []byte("# no CA bundle on the build machine\n"), 0o644)
	return p
}
