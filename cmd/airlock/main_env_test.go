package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain shares one compilation cache between the many state directories the tests make, so
// each plugin compiles once per machine instead of once per test (the CLI honours
// AIRLOCK_CACHE_DIR for this).
//
// With AIRLOCK_TEST_MAIN=1 the test binary is airlock itself (its arguments are the command's),
// so tests can run `airlock serve` as a child process without building the binary.
func TestMain(m *testing.M) {
	// Run as airlock: AIRLOCK_TEST_MAIN=1, or a link named airlock to the test binary (what
	// the MCP Inspector test puts on PATH: the Inspector passes the server no other variable).
	if os.Getenv("AIRLOCK_TEST_MAIN") == "1" || filepath.Base(os.Args[0]) == "airlock" {
		main()
	}
	if os.Getenv("AIRLOCK_CACHE_DIR") == "" {
		if d, err := os.UserCacheDir(); err == nil {
			os.Setenv("AIRLOCK_CACHE_DIR", filepath.Join(d, "airlock"))
		}
	}
	os.Exit(m.Run())
}
