package testenv

import (
	"os/exec"
	"testing"
)

// Tool returns the path of a command the tests run (promtool and prometheus come with Debian's
// prometheus package, which .ci/run installs). Without it the test is skipped with a message,
// or fails when AIRLOCK_TEST_REQUIRE_SERVICES=1.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missing(t, name+" is not installed: run `apt-get install "+pkg+"` to run this test")
	return ""
}
