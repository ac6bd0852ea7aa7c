package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
)

// cannedSlack answers the Slack connector's one request of post_message.
type cannedSlack struct{ *fakeHandler }

func (cannedSlack) HTTP(context.Context, []byte) []byte {
	body := `{"ok":true,"channel":"C0GENERAL","ts":"1795443394.714321","message":{"type":"message",` +
		`"user":"U0BOT","bot_id":"B0BOT","text":"benchmark: deploy finished","ts":"1795443394.714321","team":"T0AIRLOCK"}}`
	b, _ := json.Marshal(map[string]any{"status": 200, "body": []byte(body), "headers": map[string][]string{
		"Content-Type": {"application/json; charset=utf-8"}}})
	return b
}

// BenchmarkInstanceMemory reports what one pooled instance of the Slack connector costs once
// it has served a post_message (`make bench` shows it): the growth of the process's resident
// memory, the guest's linear memory (reserved by its own mapping, resident as far as touched),
// and the Go heap (wazero's instance, the Extism arena, the instance's maps), each per
// instance, over instances made one after another. It also reports how much of a served
// instance's memory is still byte-for-byte the same as another's (same-pages-%): the share a
// copy-on-write snapshot of the initialised module could let instances share.
func BenchmarkInstanceMemory(b *testing.B) {
	const n = 8
	m := load(b, Options{Name: "slack", Wasm: plugin(b, "./plugins/slack"), Exports: []string{"post_message"},
		PoolSize: 1, Warm: -1})
	ctx := context.Background()
	args := []byte(`{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`)
	var rss, guest, touched, heap, same float64
	for b.Loop() {
		goruntime.GC()
		var ms0 goruntime.MemStats
		goruntime.ReadMemStats(&ms0)
		rss0 := residentKiB(b)
		ins := make([]*instance, n)
		for i := range ins {
			in, err := m.newInstance(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.call(ctx, in, "post_message", args, cannedSlack{&fakeHandler{}}); err != nil {
				b.Fatal(err)
			}
			ins[i] = in
		}
		goruntime.GC()
		var ms1 goruntime.MemStats
		goruntime.ReadMemStats(&ms1)
		rss = float64(residentKiB(b)-rss0) / n
		heap = float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc)) / 1024 / n
		guest, touched, same = 0, 0, 0
		first, _ := ins[0].mod.Memory().Read(0, ins[0].mod.Memory().Size())
		for _, in := range ins {
			mem, _ := in.mod.Memory().Read(0, in.mod.Memory().Size())
			guest += float64(len(mem)) / 1024 / n
			var pages, nonzero, equal int
			for off := 0; off < len(mem); off += 4096 {
				p := mem[off:min(off+4096, len(mem))]
				pages++
				if !allZero(p) {
					nonzero++
					if off+len(p) <= len(first) && bytes.Equal(p, first[off:off+len(p)]) {
						equal++
					}
				}
			}
			touched += float64(nonzero) * 4 / n
			if in != ins[0] {
				same += 100 * float64(equal) / float64(max(nonzero, 1)) / (n - 1)
			}
		}
		for _, in := range ins {
			in.mod.Close(ctx)
		}
	}
	b.ReportMetric(rss, "rss-KiB/instance")
	b.ReportMetric(guest, "guest-KiB/instance")
	b.ReportMetric(touched, "guest-nonzero-KiB/instance")
	b.ReportMetric(heap, "heap-KiB/instance")
	b.ReportMetric(same, "same-pages-%")
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// residentKiB is the process's resident set (VmRSS), 0 where /proc is missing.
func residentKiB(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
