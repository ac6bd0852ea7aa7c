// Command image builds airlock's container image without a container daemon: a static
// (CGO_ENABLED=0) linux binary, the demo's prebuilt plugins and a CA bundle on an empty base,
// running as UID 65532 with its state in the /data volume, so that the root filesystem can be
// mounted read-only. It writes a tarball that 'docker load' and 'podman load' read and, with
// --oci, an OCI image layout directory that skopeo, crane and registries' tooling read.
//
//	go run ./internal/cmd/image --out build/airlock-image.tar      # or: make image
//	docker load -i build/airlock-image.tar && docker run --rm airlock:dev --version
//
// The Dockerfile at the repository root builds the same image where a daemon exists.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func main() {
	var o Options
	flag.StringVar(&o.Out, "out", "build/airlock-image.tar", "write the image as a docker/podman-loadable tarball `file`")
	flag.StringVar(&o.OCI, "oci", "", "also write an OCI image layout to this `directory`")
	flag.StringVar(&o.Tag, "tag", "", "image reference in the tarball (default airlock:VERSION)")
	flag.StringVar(&o.Version, "version", "", "version stamped in the binary and the labels (default: git describe)")
	flag.StringVar(&o.Arch, "arch", "amd64", "GOARCH of the image (linux only)")
	flag.StringVar(&o.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM `file` of CA certificates to trust for outbound HTTPS")
	demoOnly := flag.String("demo-plugins", "", "only build the demo's plugins into this `directory` (for the Dockerfile) and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *demoOnly != "" {
		if _, err := pluginbuild.Demo(ctx, *demoOnly); err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			os.Exit(1)
		}
		return
	}
	res, err := Build(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("image %s (%s): %s, %d layers, %.1f MiB compressed; loads with: docker load -i %s\n",
		res.Tag, res.Digest, o.Out, res.Layers, float64(res.CompressedBytes)/(1<<20), o.Out)
}
