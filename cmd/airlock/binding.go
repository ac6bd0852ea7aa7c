package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
)

// bindingHeader introduces the per-tool bindings in `manifest validate` and `grant --dry-run`.
const bindingHeader = "What each tool's code may use (tools[].uses; the host refuses anything else):"

// printBindings prints what each tool of m may use while it runs.
func printBindings(w io.Writer, m *manifest.Manifest) {
	fmt.Fprintln(w, "  "+bindingHeader)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i := range m.Tools {
		fmt.Fprintf(tw, "    %s\t%s\n", m.Tools[i].Name, m.DescribeBinding(&m.Tools[i]))
	}
	tw.Flush()
}

// printToolBindings prints the bindings of the tools an admin reviews before granting.
func printToolBindings(w io.Writer, tools []admin.ToolAsk) {
	fmt.Fprintln(w, bindingHeader)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range tools {
		fmt.Fprintf(tw, "  %s\t%s\n", t.Name, t.Uses)
	}
	tw.Flush()
}
