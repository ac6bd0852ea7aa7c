package idempotency

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// BenchmarkKeyedCall measures a keyed call's idempotency writes on a real store, with and
// without the attempt mark written before the first upstream request:
//
//	go test ./host/internal/idempotency -run '^$' -bench KeyedCall -benchtime 2000x
func BenchmarkKeyedCall(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		dsn := "sqlite:" + filepath.Join(b.TempDir(), "state.db")
		if name == "postgres" {
			dsn = testenv.Postgres(b)
		}
		st, err := store.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		d := New(st, Config{Logger: quiet})
		for _, mark := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/attempt-mark=%v", name, mark), func(b *testing.B) {
				ctx := context.Background()
				for i := 0; b.Loop(); i++ {
					_, _, err := d.Do(ctx, "s", fmt.Sprintf("%v-%d", mark, i), "h", func(ctx context.Context) ([]byte, bool) {
						if mark {
							if err := Attempting(ctx); err != nil {
								b.Fatal(err)
							}
						}
						return []byte("ok"), true
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		st.Close()
	}
}
