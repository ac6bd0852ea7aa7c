package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// canary is a DSN password and master key as an operator has them in their shell when they
// render or deploy: it must reach no manifest.
const canary = "Canary-deploy-pw-91c4"

// helmBin finds helm: on PATH or where .ci/run installs it (pinned, see .ci/run).
func helmBin(t *testing.T) string {
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, ".cache", "airlock", "bin", "helm"); fileExists(p) {
			return p
		}
	}
	if os.Getenv("AIRLOCK_TEST_REQUIRE_SERVICES") != "" {
		t.Fatal("helm is not installed: .ci/run installs it into $HOME/.cache/airlock/bin")
	}
	t.Skip("helm not installed (GOBIN=$HOME/.cache/airlock/bin go install helm.sh/helm/v3/cmd/helm@v3.21.4)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "AIRLOCK_STATE=postgres://airlock:"+canary+"@db/airlock", "AIRLOCK_MASTER_KEY="+canary,
		"HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestHelmChart(t *testing.T) {
	helm(t, "lint", "--strict", "helm/airlock")
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"tls and a redis password", []string{"--set", "tls.secretName=airlock-tls", "--set", "secret.redisURLKey=redis-url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := helm(t, append([]string{"template", "rel", "helm/airlock"}, tc.set...)...)
			if strings.Contains(out, canary) {
				t.Fatalf("the rendered manifests hold the canary from the environment:\n%s", out)
			}
			kinds := map[string]int{}
			var dep appsv1.Deployment
			var pdb policyv1.PodDisruptionBudget
			for _, doc := range strings.Split(out, "\n---") {
				var meta struct{ Kind string }
				if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
					t.Fatalf("not YAML: %v\n%s", err, doc)
				}
				if meta.Kind == "" {
					continue
				}
				kinds[meta.Kind]++
				var obj any
				switch meta.Kind {
				case "Deployment":
					obj = &dep
				case "Service":
					obj = &corev1.Service{}
				case "PodDisruptionBudget":
					obj = &pdb
				case "NetworkPolicy":
					obj = &networkingv1.NetworkPolicy{}
				default:
					t.Errorf("unexpected kind %s (a Secret must never be rendered: the operator creates it)", meta.Kind)
					continue
				}
				if err := matchesAPI([]byte(doc), obj); err != nil {
					t.Errorf("%s does not match the Kubernetes API: %v", meta.Kind, err)
				}
			}
			for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} {
				if kinds[k] != 1 {
					t.Errorf("%d %s rendered, want 1", kinds[k], k)
				}
			}
			checkDeployment(t, &dep, tc.set != nil)
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() >= int(*dep.Spec.Replicas) {
				t.Errorf("PDB minAvailable %v with %d replicas: a node drain could never proceed, or take them all", pdb.Spec.MinAvailable, *dep.Spec.Replicas)
			}
		})
	}
}

// matchesAPI decodes doc strictly into obj (an unknown field fails) and checks that every field
// of doc survives a round trip through the API type with its exact spelling and value:
// encoding/json matches names case-insensitively, the API server does not.
func matchesAPI(doc []byte, obj any) error {
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	var orig, back any
	if err := yaml.Unmarshal(doc, &orig); err != nil {
		return err
	}
	j, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(j, &back); err != nil {
		return err
	}
	return subset("", orig, back)
}

// subset reports the first value of a that b lacks or holds differently.
func subset(at string, a, b any) error {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: not an object in the API type", at)
		}
		for k, v := range a {
			if err := subset(at+"."+k, v, bm[k]); err != nil {
				return err
			}
		}
	case []any:
		bl, ok := b.([]any)
		if !ok || len(bl) != len(a) {
			return fmt.Errorf("%s: list lost in the API type", at)
		}
		for i := range a {
			if err := subset(fmt.Sprintf("%s[%d]", at, i), a[i], bl[i]); err != nil {
				return err
			}
		}
	default:
		if fmt.Sprint(a) != fmt.Sprint(b) {
			return fmt.Errorf("%s: %v is not a field of the API type (it reads back as %v)", at, a, b)
		}
	}
	return nil
}

func checkDeployment(t *testing.T, dep *appsv1.Deployment, tls bool) {
	t.Helper()
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("the pod may run as root: %+v", pod.SecurityContext)
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext = %+v, want a read-only root filesystem and no privilege escalation", sc)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}, {c.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("probe = %+v, want GET %s", p.probe, p.path)
		} else if tls != (p.probe.HTTPGet.Scheme == corev1.URISchemeHTTPS) {
			t.Errorf("probe %s scheme %q with tls=%v", p.path, p.probe.HTTPGet.Scheme, tls)
		}
	}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			fromSecret[e.Name] = true
		}
	}
	for _, name := range []string{"AIRLOCK_MASTER_KEY", "AIRLOCK_STATE"} {
		if !fromSecret[name] {
			t.Errorf("%s does not come from a Secret: %+v", name, c.Env)
		}
	}
	if tls && !strings.Contains(strings.Join(c.Args, " "), "--tls-cert=") {
		t.Errorf("args %q lack --tls-cert with tls.secretName set", c.Args)
	}
}

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, _ := filepath.Abs(".")
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SkipResolveEnvironment = true })
}

// The Compose file passes the specification's schema, runs three read-only non-root replicas
// behind a proxy with PostgreSQL and Redis, and refuses to start without the operator's secrets
// (none has a default in the file).
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, map[string]string{}); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("compose without POSTGRES_PASSWORD loads (%v): a password must not have a default", err)
	}
	p, err := loadCompose(t, map[string]string{"POSTGRES_PASSWORD": canary, "AIRLOCK_MASTER_KEY": canary})
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	if bytes.Contains(raw, []byte(canary)) {
		t.Fatal("compose.yaml holds the canary")
	}
	for _, name := range []string{"airlock", "proxy", "postgres", "redis"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
	a, _ := p.GetService("airlock")
	if a.Deploy == nil || a.Deploy.Replicas == nil || *a.Deploy.Replicas != 3 {
		t.Errorf("airlock replicas = %+v, want 3", a.Deploy)
	}
	if !a.ReadOnly || a.User != "65532:65532" {
		t.Errorf("airlock service read_only=%v user=%q, want read-only as 65532", a.ReadOnly, a.User)
	}
	if dsn := a.Environment["AIRLOCK_STATE"]; dsn == nil || !strings.HasPrefix(*dsn, "postgres://") {
		t.Errorf("AIRLOCK_STATE = %v, want the PostgreSQL DSN", dsn)
	}
	if a.Environment["AIRLOCK_REDIS"] == nil {
		t.Error("AIRLOCK_REDIS is not set: replicas would not share rate limits")
	}
}
