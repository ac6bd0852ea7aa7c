package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoDBEnv names the MongoDB URL .ci/services exports: FerretDB, a MongoDB-wire server, on
// mongodb://127.0.0.1:57017/.
const MongoDBEnv = "AIRLOCK_TEST_MONGODB"

// MongoDB returns the URL of a new, empty database on the test MongoDB server (its path names
// the database), dropped when the test ends, so tests never share state.
func MongoDB(t testing.TB) string {
	t.Helper()
	base := need(t, MongoDBEnv, "MongoDB (FerretDB)")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a URL: %v", MongoDBEnv, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "airlock_t_" + hex.EncodeToString(b[:])
	u.Path = "/" + name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := mongo.Connect(options.Client().ApplyURI(base))
		if err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
			return
		}
		defer c.Disconnect(ctx)
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
		}
	})
	return u.String()
}
