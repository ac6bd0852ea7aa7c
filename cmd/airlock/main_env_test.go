package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain shares one compilation cache between the many state directories the tests make, so
// each plugin compiles once per machine instead of once per test (the CLI honours
// AIRLOCK_CACHE_DIR for this).
func TestMain(m *testing.M) {
	if os.Getenv("AIRLOCK_CACHE_DIR") == "" {
		if d, err := os.UserCacheDir(); err == nil {
			os.Setenv("AIRLOCK_CACHE_DIR", filepath.Join(d, "airlock"))
		}
	}
	os.Exit(m.Run())
}
