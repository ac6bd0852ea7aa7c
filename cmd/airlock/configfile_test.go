package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// Each testdata/config/NAME.yaml, as the airlock.yaml of the working directory, makes
// 'airlock tools' fail with the message in NAME.golden: FILE:LINE: what to change, in the
// words of the file (no Go type names).
func TestConfigErrorsGolden(t *testing.T) {
	cleanEnv(t)
	inputs, _ := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if len(inputs) < 8 {
		t.Fatalf("%d inputs in testdata/config", len(inputs))
	}
	here, _ := os.Getwd()
	dir := t.TempDir()
	t.Chdir(dir)
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(here, in))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile("airlock.yaml", data, 0o600)
			code, out, errOut := airlock(t, "tools")
			if code != exitError || out != "" {
				t.Errorf("tools = %d, stdout %q; want exit 1 and nothing on stdout", code, out)
			}
			for _, leak := range []string{"main.", "fileConfig", "!!str", "unmarshal", "yaml: "} {
				if strings.Contains(errOut, leak) {
					t.Errorf("the message shows %q: %s", leak, errOut)
				}
			}
			if !strings.HasPrefix(errOut, "airlock tools: airlock.yaml:") {
				t.Errorf("the message does not start with FILE:LINE: %q", errOut)
			}
			t.Chdir(here)
			golden(t, filepath.Join("config", name+".golden"), errOut)
			t.Chdir(dir)
		})
	}
}

// airlock.yml is read when it is alone; with airlock.yaml too, airlock refuses to guess; a
// misnamed file is named in a warning instead of being silently ignored.
func TestConfigFileNames(t *testing.T) {
	cleanEnv(t)
	t.Chdir(t.TempDir())
	os.WriteFile("airlock.yml", []byte("conectors: []\n"), 0o600)
	if code, _, errOut := airlock(t, "tools"); code != exitError || !strings.Contains(errOut, `airlock.yml:1: unknown key "conectors"`) {
		t.Errorf("tools with airlock.yml = %d, %q; want airlock.yml read", code, errOut)
	}
	os.WriteFile("airlock.yml", []byte("state_dir: from-yml\n"), 0o600)
	if code, _, errOut := airlock(t, "tools"); code != exitOK {
		t.Fatalf("tools = %d, %q", code, errOut)
	}
	if _, err := os.Stat("from-yml"); err != nil {
		t.Errorf("airlock.yml's state_dir was not used: %v", err)
	}
	os.WriteFile("airlock.yaml", []byte("state_dir: from-yaml\n"), 0o600)
	if code, _, errOut := airlock(t, "tools"); code != exitError || !strings.Contains(errOut, "both airlock.yaml and airlock.yml") {
		t.Errorf("tools with both = %d, %q; want a refusal naming both", code, errOut)
	}
	os.Remove("airlock.yml")
	os.Remove("airlock.yaml")
	for _, near := range []string{"Airlock.yaml", "airlock.yaml.txt", ".airlock.yaml", "airlok.yaml", "airlock.json"} {
		os.WriteFile(near, []byte("connectors: []\n"), 0o600)
		code, out, errOut := airlock(t, "tools")
		if code != exitOK || !strings.Contains(out, "No tools") || !strings.Contains(errOut, near+" is not read") || !strings.Contains(errOut, "--config "+near) {
			t.Errorf("tools beside %s = %d, %q %q; want a warning naming it", near, code, out, errOut)
		}
		os.Remove(near)
	}
	os.WriteFile("notes.yaml", nil, 0o600)
	if _, _, errOut := airlock(t, "tools"); errOut != "" {
		t.Errorf("tools beside notes.yaml warns: %q", errOut)
	}
}

// 'airlock serve' with no configuration says it serves nothing, and where to start.
func TestServeWarnsWithoutTools(t *testing.T) {
	cleanEnv(t)
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testenv.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"serve", "--http", "127.0.0.1:0"}, &out, &errOut) }()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errOut.String(), "MCP over streamable HTTP") && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	msg := errOut.String()
	for _, want := range []string{"serving no tools", "no airlock.yaml in", "airlock demo", "README"} {
		if !strings.Contains(msg, want) {
			t.Errorf("serve's stderr lacks %q:\n%s", want, msg)
		}
	}
}
