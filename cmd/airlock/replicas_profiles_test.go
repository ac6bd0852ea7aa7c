package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// An agent profile set through one replica's admin API reaches the clients connected to the
// other replicas (PostgreSQL LISTEN/NOTIFY) as notifications/tools/list_changed, within the
// replicas' propagation bound, and their calls follow it. The latencies are printed.
func TestReplicaProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the airlock binary and starts three servers")
	}
	w := newReplicaWorld(t)
	r1 := w.replicas[0]
	agent := fmt.Sprintf("profiled-%d", time.Now().UnixNano())
	token := strings.TrimSpace(w.cli(t, "agent", "add", agent))
	type client struct {
		cs      *sdk.ClientSession
		changed chan struct{}
	}
	var clients []client
	for _, r := range w.replicas[1:] {
		changed := make(chan struct{}, 64)
		c := sdk.NewClient(&sdk.Implementation{Name: "profiles-test", Version: "1"}, &sdk.ClientOptions{
			ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { changed <- struct{}{} }})
		cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: r.url + "/mcp", MaxRetries: -1,
			HTTPClient: &http.Client{Transport: bearerTransport{token: token}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		clients = append(clients, client{cs, changed})
	}
	names := func(cs *sdk.ClientSession) []string {
		res, err := cs.ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tl := range res.Tools {
			out = append(out, tl.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names(clients[0].cs); len(got) != 3 {
		t.Fatalf("before any profile the agent lists %v; want the 3 granted tools", got)
	}

	var latencies []time.Duration
	for round := range 6 {
		tools := `["slack.list_channels"]`
		want := []string{"slack.list_channels"}
		if round%2 == 1 {
			tools = `["slack.list_channels","slack.post_message"]`
			want = []string{"slack.list_channels", "slack.post_message"}
		}
		for _, c := range clients {
			for len(c.changed) > 0 {
				<-c.changed
			}
		}
		w.admin(t, r1, "PUT", "/admin/v1/profiles/readers", []byte(fmt.Sprintf(`{"members":[%q],"tools":%s}`, agent, tools)))
		ack := time.Now()
		for i, c := range clients {
			select {
			case <-c.changed:
				latencies = append(latencies, time.Since(ack))
			case <-time.After(replicaBound + 5*time.Second):
				t.Fatalf("round %d: replica %d sent no list_changed after the profile changed on replica 1", round, i+2)
			}
			if got := names(c.cs); !slices.Equal(got, want) {
				t.Errorf("round %d: replica %d lists %v; want %v", round, i+2, got, want)
			}
		}
	}
	res, err := clients[1].cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "slack.channel_history", Arguments: map[string]any{"channel": "C0GENERAL"}})
	if err != nil || !res.IsError || !strings.Contains(fmt.Sprint(res.Content[0]), "profile readers does not allow slack.channel_history") {
		t.Errorf("a call outside the profile on replica 3 = %v, %v; want refused by profile readers", res, err)
	}
	t.Logf("profile change → list_changed on another replica: p50 %s, max %s over %d deliveries",
		percentile(latencies, 0.5), slices.Max(latencies), len(latencies))
	if m := slices.Max(latencies); m > replicaBound {
		t.Errorf("a profile change took %s to reach a client on another replica; want ≤ %s", m, replicaBound)
	}
}
