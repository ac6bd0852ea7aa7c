package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/openapi"
)

// Tool names must satisfy the manifest's rule and the MCP / OpenAI / Anthropic tool-name rule.
var (
	manifestName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	llmName      = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
)

// TestImportPublishedDescriptions imports a chosen set of operations from each published
// description: the manifest validates (which compiles every schema), names are valid, the
// annotations follow the methods and no secret or credential value appears.
func TestImportPublishedDescriptions(t *testing.T) {
	t.Parallel()
	for _, rt := range roundTrips {
		t.Run(rt.spec, func(t *testing.T) {
			spec := loadSpec(t, rt.spec)
			res, err := spec.Import(openapi.Selection{Operations: rt.ops}, &openapi.ImportOptions{Name: "imported"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse("imported.yaml", res.Manifest)
			if err != nil {
				t.Fatalf("manifest does not validate: %v", err)
			}
			for _, tool := range m.Tools {
				if !manifestName.MatchString(tool.Name) || !llmName.MatchString(tool.Name) || !llmName.MatchString(m.Name+"_"+tool.Name) {
					t.Errorf("tool name %q is not valid for manifests and MCP/OpenAI/Anthropic", tool.Name)
				}
				if strings.ContainsAny(tool.Description, "<>") && regexp.MustCompile(`<[a-zA-Z/][^>]*>`).MatchString(tool.Description) {
					t.Errorf("%s: description has HTML: %s", tool.Name, tool.Description)
				}
				if tool.Description == "" || len(tool.Description) > 1100 {
					t.Errorf("%s: description of %d characters", tool.Name, len(tool.Description))
				}
			}
			if len(m.Network) == 0 {
				t.Error("no network rules")
			}
			for _, r := range m.Network {
				if r.PathPrefix == "/" {
					t.Errorf("network rule %+v allows the whole host; want the operations' prefixes", r)
				}
			}
		})
	}
}

// TestImportAnnotationsAndCredentials checks the per-method annotations and the credential
// slots and scopes made from securitySchemes, on Slack's OAuth description and OpenAI's bearer.
func TestImportAnnotationsAndCredentials(t *testing.T) {
	t.Parallel()
	slack := importSpec(t, "slack_web_openapi_v2.json", "chat_postMessage", "conversations_list", "chat_delete")
	post, _ := slack.Tool("chat_post_message")
	list, _ := slack.Tool("conversations_list")
	del, _ := slack.Tool("chat_delete")
	if !list.Annotations.ReadOnly || !list.Annotations.Idempotent || post.Annotations.ReadOnly || post.Annotations.Idempotent {
		t.Errorf("annotations: list %+v post %+v", list.Annotations, post.Annotations)
	}
	if len(slack.Credentials) != 1 || slack.Credentials[0].Kind != manifest.KindOAuth2AuthorizationCode || slack.Credentials[0].Hosts[0] != "slack.com" {
		t.Fatalf("slack credentials = %+v, want one oauth2_authorization_code slot for slack.com", slack.Credentials)
	}
	if !contains(post.Scopes, "chat:write:bot") || !contains(list.Scopes, "channels:read") || contains(list.Scopes, "chat:write:bot") {
		t.Errorf("scopes per tool: post %v list %v", post.Scopes, list.Scopes)
	}
	if del.Annotations.Destructive {
		t.Errorf("chat.delete is a POST in Slack's description; annotated destructive %+v", del.Annotations)
	}
	if strings.Contains(string(mustInput(t, post)), `"token"`) {
		t.Errorf("chat_post_message asks agents for the token parameter: %s", post.InputSchema)
	}
	// dnd.setSnooze declares the token as a required form field.
	snooze, _ := importSpec(t, "slack_web_openapi_v2.json", "dnd_setSnooze").Tool("dnd_set_snooze")
	if in := string(snooze.InputSchema); strings.Contains(in, `"token"`) || !strings.Contains(in, `"num_minutes"`) {
		t.Errorf("dnd_set_snooze input schema asks for the token, or lost num_minutes: %s", in)
	}
	openai := importSpec(t, "openai_openapi_3.1.yaml", "deleteModel", "listModels")
	d, _ := openai.Tool("delete_model")
	if !d.Annotations.Destructive || !d.Annotations.Idempotent {
		t.Errorf("delete_model annotations %+v", d.Annotations)
	}
	if len(openai.Credentials) != 1 || openai.Credentials[0].Kind != manifest.KindBearer {
		t.Errorf("openai credentials = %+v, want one bearer slot", openai.Credentials)
	}
}

func mustInput(t *testing.T, tool *manifest.Tool) []byte { return tool.InputSchema }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func importSpec(t *testing.T, file string, ops ...string) *manifest.Manifest {
	t.Helper()
	spec := loadSpec(t, file)
	res, err := spec.Import(openapi.Selection{Operations: ops}, &openapi.ImportOptions{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("x.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestImportNeedsSelection: never the whole API by default; the error says how many
// operations there are and how to choose.
func TestImportNeedsSelection(t *testing.T) {
	t.Parallel()
	spec := loadSpec(t, "openai_openapi_3.1.yaml")
	_, err := spec.Import(openapi.Selection{}, &openapi.ImportOptions{Name: "openai"})
	if !errors.Is(err, openapi.ErrNoSelection) || !strings.Contains(err.Error(), "288 operations") || !strings.Contains(err.Error(), "--operations") {
		t.Errorf("Import(no selection) = %v, want ErrNoSelection saying 288 operations and --operations", err)
	}
	_, err = spec.Import(openapi.Selection{Operations: []string{"GET /no/such"}}, &openapi.ImportOptions{Name: "openai"})
	if err == nil || !strings.Contains(err.Error(), `"GET /no/such"`) {
		t.Errorf("Import(unknown operation) = %v, want it named", err)
	}
	res, err := spec.Import(openapi.Selection{Tags: []string{"Models"}}, &openapi.ImportOptions{Name: "openai", NoOutputSchemaFor: []string{"delete_model"}})
	if err != nil || len(res.Tools) != 3 {
		t.Fatalf("Import(--tag Models) = %v, %v; want the 3 model operations", res, err)
	}
	m, err := manifest.Parse("openai.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range m.Tools {
		if (tool.OutputSchema == nil) != (tool.Name == "delete_model") {
			t.Errorf("%s: output schema %.60s; want one on every tool but delete_model", tool.Name, tool.OutputSchema)
		}
	}
}

// TestImportLargeDescription reports the time and memory of loading and importing the 3 MB
// OpenAI description (go test -v); the bound is generous for a loaded 2-core CI machine.
func TestImportLargeDescription(t *testing.T) {
	path := specPath(t, "openai_openapi_3.1.yaml")
	fi, _ := os.Stat(path)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	spec, err := openapi.Load(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(start)
	res, err := spec.Import(openapi.Selection{Operations: []string{"createChatCompletion", "createEmbedding", "listModels"}}, &openapi.ImportOptions{Name: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(spec)
	t.Logf("OpenAI description (%.1f MB): load %v, load+import of 3 operations %v, %.0f MB allocated, manifest %d KB",
		float64(fi.Size())/1e6, loaded.Round(time.Millisecond), total.Round(time.Millisecond),
		float64(after.TotalAlloc-before.TotalAlloc)/1e6, len(res.Manifest)>>10)
	if total > 30*time.Second {
		t.Errorf("import took %v", total)
	}
}

// TestHostileDescriptions: each is refused or bounded with an error that says what to do.
func TestHostileDescriptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: 'https://api.example.com'}]\n"

	t.Run("50 MB document", func(t *testing.T) {
		big := head + "paths: {}\nx-padding: '" + strings.Repeat("a", 50<<20) + "'\n"
		_, err := openapi.Load(context.Background(), write("big.yaml", big), nil)
		if !errors.Is(err, openapi.ErrTooLarge) || !strings.Contains(err.Error(), "16 MiB") {
			t.Errorf("Load(50 MB) = %v, want ErrTooLarge naming the limit", err)
		}
	})
	t.Run("billion laughs", func(t *testing.T) {
		for _, top := range []string{head, "swagger: '2.0'\ninfo: {title: t, version: '1'}\nhost: api.example.com\n"} {
			var b strings.Builder
			b.WriteString(top + "x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
			for i := 1; i < 10; i++ {
				fmt.Fprintf(&b, "x-a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
			}
			b.WriteString("paths:\n  /x:\n    get: {operationId: x, responses: {'200': {description: ok}}}\n")
			_, err := openapi.Load(context.Background(), write("laughs.yaml", b.String()), nil)
			if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
				t.Errorf("Load(billion laughs) = %v, want refused", err)
			}
		}
	})
	t.Run("10,000 operations", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(head + "paths:\n")
		for i := range 10000 {
			fmt.Fprintf(&b, "  /r%d:\n    get: {operationId: op%d, responses: {'200': {description: ok}}}\n", i, i)
		}
		spec, err := openapi.Load(context.Background(), write("many.yaml", b.String()), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = spec.Import(openapi.Selection{}, &openapi.ImportOptions{Name: "many"})
		if !errors.Is(err, openapi.ErrNoSelection) || !strings.Contains(err.Error(), "10000 operations") {
			t.Errorf("Import(10,000 operations, no selection) = %v", err)
		}
		var all []string
		for i := range 200 {
			all = append(all, fmt.Sprintf("op%d", i))
		}
		_, err = spec.Import(openapi.Selection{Operations: all}, &openapi.ImportOptions{Name: "many"})
		if err == nil || !strings.Contains(err.Error(), "choose fewer") {
			t.Errorf("Import(200 operations) = %v, want refused (at most %d)", err, openapi.MaxTools)
		}
		res, err := spec.Import(openapi.Selection{Operations: []string{"op9999", "GET /r0"}}, &openapi.ImportOptions{Name: "many"})
		if err != nil || len(res.Tools) != 2 {
			t.Errorf("Import(2 of 10,000) = %v, %v", res, err)
		}
	})
	t.Run("deep $ref chain and a cycle", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(head + `paths:
  /x:
    post:
      operationId: deep
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/S0'}}}}
      responses: {'200': {description: ok}}
  /y:
    post:
      operationId: cyclic
      requestBody: {content: {application/json: {schema: {$ref: '#/components/schemas/Node'}}}}
      responses: {'200': {description: ok}}
components:
  schemas:
    Node: {type: object, properties: {next: {$ref: '#/components/schemas/Node'}, name: {type: string}}}
`)
		for i := range 300 {
			fmt.Fprintf(&b, "    S%d: {type: object, properties: {p: {$ref: '#/components/schemas/S%d'}}}\n", i, i+1)
		}
		b.WriteString("    S300: {type: string}\n")
		spec, err := openapi.Load(context.Background(), write("refs.yaml", b.String()), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := spec.Import(openapi.Selection{Operations: []string{"cyclic"}}, &openapi.ImportOptions{Name: "refs"})
		if err != nil {
			t.Fatalf("Import(cycle) = %v", err)
		}
		m, err := manifest.Parse("refs.yaml", res.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		tool, _ := m.Tool("cyclic")
		if err := tool.ValidateInput([]byte(`{"body":{"name":"a","next":{"name":"b","next":{"name":"c"}}}}`)); err != nil {
			t.Errorf("a recursive value is refused: %v", err)
		}
		if err := tool.ValidateInput([]byte(`{"body":{"next":{"next":{"name":1}}}}`)); err == nil {
			t.Error("a wrong type three levels down in a recursive schema is accepted")
		}
		_, err = spec.Import(openapi.Selection{Operations: []string{"deep"}}, &openapi.ImportOptions{Name: "refs"})
		if err == nil || !strings.Contains(err.Error(), "more than 256 distinct schemas") {
			t.Errorf("Import(300-deep $ref chain) = %v, want refused with the bound", err)
		}
	})
	t.Run("remote $ref to another host", func(t *testing.T) {
		var hits int
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits++
			w.Write([]byte(`{"type":"string"}`))
		}))
		defer other.Close()
		doc := head + `paths:
  /x:
    post:
      operationId: remote
      requestBody: {content: {application/json: {schema: {$ref: '` + other.URL + `/schema.json'}}}}
      responses: {'200': {description: ok}}
`
		_, err := openapi.Load(context.Background(), write("remote.yaml", doc), nil)
		if !errors.Is(err, openapi.ErrForeignRef) || hits != 0 {
			t.Errorf("Load(remote $ref) = %v with %d fetches, want ErrForeignRef and none", err, hits)
		}
		// A $ref to a file outside the description's directory is foreign too.
		doc2 := strings.Replace(doc, other.URL+"/schema.json", "../../etc/passwd", 1)
		_, err = openapi.Load(context.Background(), write("escape.yaml", doc2), nil)
		if !errors.Is(err, openapi.ErrForeignRef) {
			t.Errorf("Load($ref ../../etc/passwd) = %v, want ErrForeignRef", err)
		}
	})
	t.Run("same-origin $ref redirected to another host", func(t *testing.T) {
		var hits int
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits++
			w.Write([]byte("Thing: {type: string}\n"))
		}))
		defer other.Close()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api.yaml" {
				w.Write([]byte(head + "paths:\n  /x:\n    post:\n      operationId: r\n      requestBody: {content: {application/json: {schema: {$ref: 'schemas.yaml#/Thing'}}}}\n      responses: {'200': {description: ok}}\n"))
				return
			}
			http.Redirect(w, r, other.URL+"/schemas.yaml", http.StatusFound)
		}))
		defer srv.Close()
		_, err := openapi.Load(context.Background(), srv.URL+"/api.yaml", nil)
		if !errors.Is(err, openapi.ErrForeignRef) || hits != 0 {
			t.Errorf("Load($ref redirected off origin) = %v with %d fetches from the other host, want ErrForeignRef and none", err, hits)
		}
	})
	t.Run("same-origin remote $ref is followed", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/api.yaml":
				w.Write([]byte(head + `paths:
  /x:
    post:
      operationId: remote
      requestBody: {content: {application/json: {schema: {$ref: 'schemas.yaml#/Thing'}}}}
      responses: {'200': {description: ok}}
`))
			case "/schemas.yaml":
				w.Write([]byte("Thing: {type: object, required: [id], properties: {id: {type: integer}}}\n"))
			default:
				http.NotFound(w, r)
			}
		}))
		defer srv.Close()
		spec, err := openapi.Load(context.Background(), srv.URL+"/api.yaml", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := spec.Import(openapi.Selection{Operations: []string{"remote"}}, &openapi.ImportOptions{Name: "remote"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(res.Manifest), `"required": ["id"]`) {
			t.Errorf("the same-origin $ref was not resolved:\n%s", res.Manifest)
		}
	})
	t.Run("servers on metadata and loopback addresses", func(t *testing.T) {
		for _, server := range []string{"http://169.254.169.254/latest", "http://127.0.0.1:8080", "http://[::1]/", "http://localhost/api", "http://10.0.0.5", "http://metadata.google.internal/computeMetadata/v1"} {
			doc := strings.Replace(head, "https://api.example.com", server, 1) + "paths:\n  /x:\n    get: {operationId: x, responses: {'200': {description: ok}}}\n"
			spec, err := openapi.Load(context.Background(), write("srv.yaml", doc), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = spec.Import(openapi.Selection{Operations: []string{"x"}}, &openapi.ImportOptions{Name: "srv"})
			if err == nil || !strings.Contains(err.Error(), "--allow-private-servers") {
				t.Errorf("Import(server %s) = %v, want refused naming --allow-private-servers", server, err)
			}
		}
	})
}

// TestImportPagination: cursor pagination is recognised in Slack's and OpenAI's descriptions.
func TestImportPagination(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		file, op, want string
	}{
		{"slack_web_openapi_v2.json", "conversations_list", `"pagination":{"kind":"cursor","arg":"cursor","field":["response_metadata","next_cursor"]}`},
		{"openai_openapi_3.1.yaml", "listFiles", `"pagination":{"kind":"cursor","arg":"after","field":["last_id"],"more":["has_more"]}`},
		{"petstore_expanded_3.0.yaml", "findPets", `"pagination"`},
	} {
		m := importSpec(t, tt.file, tt.op)
		got := m.Config[len(m.Config)-1].Default
		if want := tt.file != "petstore_expanded_3.0.yaml"; strings.Contains(got, tt.want) != want {
			t.Errorf("%s %s: operation %s; want pagination %v (%s)", tt.file, tt.op, got, want, tt.want)
		}
	}
}

// TestSecuritySchemes: each security scheme becomes the slot the host can fill, OAuth scopes go
// to the tools that use them, and what the host cannot inject is said, not guessed.
func TestSecuritySchemes(t *testing.T) {
	t.Parallel()
	spec, err := openapi.Load(context.Background(), "testdata/security_3.1.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Import(openapi.Selection{Operations: []string{"withQueryKey", "withCookie", "withBasic", "withDigestOrNone", "withOIDC", "writeItems", "readItems"}},
		&openapi.ImportOptions{Name: "secure"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("secure.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	slots := map[string]manifest.Credential{}
	for _, c := range m.Credentials {
		slots[c.Name] = c
	}
	if c := slots["query_key"]; c.Kind != manifest.KindAPIKey || c.In != "query" || c.Param != "api_key" {
		t.Errorf("query_key = %+v", c)
	}
	if c := slots["basic_auth"]; c.Kind != manifest.KindBasic {
		t.Errorf("basic_auth = %+v", c)
	}
	if c := slots["oidc"]; c.Kind != manifest.KindBearer {
		t.Errorf("oidc = %+v, want a bearer slot", c)
	}
	if c := slots["machine"]; c.Kind != manifest.KindOAuth2ClientCredentials || c.OAuth == nil || c.OAuth.TokenURL != "https://auth.example.com/token" ||
		strings.Join(c.OAuth.Scopes, " ") != "items:read items:write" {
		t.Errorf("machine = %+v", c)
	}
	if _, ok := slots["cookie_key"]; ok {
		t.Error("a cookie API key got a slot the host cannot inject")
	}
	if _, ok := slots["digest_auth"]; ok {
		t.Error("HTTP digest got a slot the host cannot inject")
	}
	w, _ := m.Tool("write_items")
	r, _ := m.Tool("read_items")
	if strings.Join(w.Scopes, " ") != "items:write" || strings.Join(r.Scopes, " ") != "items:read" {
		t.Errorf("scopes: write_items %v, read_items %v", w.Scopes, r.Scopes)
	}
	q, _ := m.Tool("with_query_key")
	if strings.Contains(string(q.InputSchema), `"api_key"`) || !strings.Contains(string(q.InputSchema), `"q"`) {
		t.Errorf("with_query_key asks agents for the key parameter: %s", q.InputSchema)
	}
	notes := strings.Join(res.Notes, "\n")
	for _, want := range []string{"cookieKey", "with_cookie: needs a security scheme the host does not support", "oidc (OpenID Connect)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "with_digest_or_none") {
		t.Errorf("an operation that also allows no authentication is reported as unsupported:\n%s", notes)
	}
}

// TestSchemaConversion: OpenAPI 3.0 keywords become their JSON Schema 2020-12 equivalents,
// checked by validating values against the imported tool as the host does.
func TestSchemaConversion(t *testing.T) {
	t.Parallel()
	spec, err := openapi.Load(context.Background(), "testdata/schemas_3.0.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := spec.Import(openapi.Selection{Operations: []string{"createThing"}}, &openapi.ImportOptions{Name: "schemas"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("schemas.yaml", res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	tool, _ := m.Tool("create_thing")
	for _, tt := range []struct {
		args  string
		valid bool
		why   string
	}{
		{`{"body":{"name":"abc","size":1}}`, true, "readOnly id is not required in a request"},
		{`{"body":{"name":null,"size":1,"color":null}}`, true, "nullable becomes a null type and a null enum value"},
		{`{"body":{"name":"abc","size":0}}`, false, "exclusiveMinimum: true with minimum 0 excludes 0"},
		{`{"body":{"name":"abc","size":11}}`, false, "maximum kept"},
		{`{"body":{"name":"ABC","size":1}}`, false, "pattern kept"},
		{`{"body":{"name":"abcdefghijk","size":1}}`, false, "maxLength kept"},
		{`{"body":{"name":"abc","size":1,"color":"blue"}}`, false, "enum kept"},
		{`{"body":{"name":"abc","size":1,"when":"yesterday"}}`, false, "format date-time asserted"},
		{`{"body":{"name":"abc","size":1,"id":"x"}}`, false, "readOnly id is not sent, and additionalProperties: false"},
		{`{"body":{"name":"abc","size":1,"secret":"s"}}`, true, "writeOnly is sent in requests"},
		{`{"body":{"size":1}}`, false, "required kept"},
		{`{"body":{"name":"abc","size":1,"lookahead":"x"}}`, true, "a pattern RE2 cannot compile is dropped, not refused"},
		{`{}`, false, "a required body"},
	} {
		if err := tool.ValidateInput([]byte(tt.args)); (err == nil) != tt.valid {
			t.Errorf("%s: ValidateInput(%s) = %v, want valid=%v", tt.why, tt.args, err, tt.valid)
		}
	}
	for _, tt := range []struct {
		out   string
		valid bool
	}{
		{`{"status":201,"data":{"id":"t1","name":"abc","size":1}}`, true},
		{`{"status":201,"data":{"id":"t1","extra":"fields the description does not list"}}`, true}, // loosened
		{`{"status":201,"data":{"id":7}}`, false},                                                  // types kept
	} {
		if err := tool.ValidateOutput([]byte(tt.out)); (err == nil) != tt.valid {
			t.Errorf("ValidateOutput(%s) = %v, want valid=%v", tt.out, err, tt.valid)
		}
	}
	if strings.Contains(string(tool.OutputSchema), `"secret"`) {
		t.Errorf("the output schema lists the writeOnly property: %s", tool.OutputSchema)
	}
	if !strings.Contains(string(tool.InputSchema), `"default":"red"`) {
		t.Errorf("the default was not kept: %s", tool.InputSchema)
	}
}
