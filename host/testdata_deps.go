//go:build tools

package host

// The test plugins under testdata/plugins/gopdk and gopdkhttp are built with this module's
// go.mod (GOOS=wasip1) from the unmodified Extism Go PDK, to prove any Extism plugin runs.
// go mod tidy does not look inside testdata, so this file, never compiled (the tools tag),
// keeps that requirement recorded.
import _ "github.com/extism/go-pdk"
