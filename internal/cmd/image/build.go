package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// The image's layout and user, shared with the Dockerfile, the Compose file and the chart.
const (
	UID        = 65532 // "nonroot", as in distroless; no root process, no shell
	BinaryPath = "/usr/local/bin/airlock"
	DemoDir    = "/usr/share/airlock/demo" // the demo's prebuilt plugins
	DataDir    = "/data"                   // the state volume: the only place airlock writes
	Port       = "8700"
)

// Options says what to build; zero fields take the defaults of the flags in main.
type Options struct {
	Out, OCI, Tag, Version, Arch, CABundle string
	Commit                                 string // default: git rev-parse HEAD
}

// Result describes the image written.
type Result struct {
	Tag             string
	Digest          string
	Layers          int
	CompressedBytes int64
}

// Build compiles airlock and the demo's plugins and writes the image.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = strings.TrimSpace(gitOut(ctx, root, "describe", "--tags", "--always", "--dirty"))
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Commit == "" {
		o.Commit = strings.TrimSpace(gitOut(ctx, root, "rev-parse", "HEAD"))
	}
	if o.Tag == "" {
		o.Tag = "airlock:" + strings.NewReplacer("+", "-", "/", "-").Replace(o.Version)
	}
	tmp, err := os.MkdirTemp("", "airlock-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "airlock")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", o.Version, o.Commit),
		"-o", bin, "./cmd/airlock")
	cmd.Dir = root
	// Only what the build needs: nothing from the caller's environment reaches the binary.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch, "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/airlock: %v\n%s", err, out)
	}
	demo, err := pluginbuild.Demo(ctx, filepath.Join(tmp, "demo"))
	if err != nil {
		return nil, err
	}

	base := []file{
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nairlock:x:%d:%d:airlock:%s:/sbin/nologin\n", UID, UID, DataDir))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nairlock:x:%d:\n", UID))},
		{name: "data", dir: true, mode: 0o700, uid: UID},
		{name: "tmp", dir: true, mode: 0o1777},
	}
	if o.CABundle != "" {
		ca, err := os.ReadFile(o.CABundle)
		if err != nil {
			return nil, fmt.Errorf("--ca-bundle: %w (install ca-certificates, or name a PEM bundle)", err)
		}
		base = append(base, file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	app := []file{{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, src: bin}}
	for _, m := range demo {
		for _, p := range []string{m, strings.TrimSuffix(m, ".yaml") + ".wasm"} {
			app = append(app, file{name: path.Join(strings.TrimPrefix(DemoDir, "/"), filepath.Base(p)), mode: 0o644, src: p})
		}
	}

	img := empty.Image
	for _, files := range [][]file{base, app} {
		l, err := layer(files)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.Arch
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--http", "0.0.0.0:" + Port},
		WorkingDir:   DataDir,
		Env:          []string{"HOME=" + DataDir, "AIRLOCK_STATE_DIR=" + DataDir, "AIRLOCK_DEMO_PLUGINS=" + DemoDir, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{Port + "/tcp": {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "airlock",
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Commit,
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()}); err != nil { // reproducible
		return nil, err
	}

	ref, err := name.NewTag(o.Tag)
	if err != nil {
		return nil, fmt.Errorf("--tag %q: %w", o.Tag, err)
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
		return nil, err
	}
	if err := tarball.WriteToFile(o.Out, ref, img); err != nil {
		return nil, err
	}
	if o.OCI != "" {
		p, err := layout.Write(o.OCI, empty.Index)
		if err != nil {
			return nil, err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.TagStr()})); err != nil {
			return nil, err
		}
	}
	res := &Result{Tag: ref.String()}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	res.Digest = d.String()
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	res.Layers = len(ls)
	for _, l := range ls {
		n, err := l.Size()
		if err != nil {
			return nil, err
		}
		res.CompressedBytes += n
	}
	return res, nil
}

// file is one entry of a layer: data, or the contents of src, or a directory.
type file struct {
	name string
	mode int64
	uid  int
	dir  bool
	data []byte
	src  string
}

// layer packs files (with their parent directories, owned by root) into a layer with fixed
// timestamps, so that the same inputs give the same digest.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	for _, f := range files {
		for d := path.Dir(f.name); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true // parents, written first and in order below
		}
	}
	var dirs []string
	for d := range seen {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: time.Unix(0, 0)}
		if f.dir {
			if seen[f.name] {
				continue
			}
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		data := f.data
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				return nil, err
			}
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func gitOut(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil && !errors.Is(err, exec.ErrNotFound) {
		return ""
	}
	return string(out)
}
