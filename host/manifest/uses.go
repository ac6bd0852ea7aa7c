package manifest

import (
	"fmt"
	"slices"
	"strings"
)

// Uses binds what a tool's code may use while it runs (DESIGN.md, invariant 9). The host refuses
// anything else with egress_denied, whatever the grant allows the connector as a whole: a
// plugin running one tool cannot borrow another tool's database function, host or credential.
//
// In a manifest each list is optional; a nil list takes its default and an empty one means
// none. The defaults:
//
//   - Database: the tool's Function, if it has one. Any other function must be listed: the
//     functions a tool's code runs are always written down per tool. A tool that may run a
//     write function needs a human's approval of every call.
//   - Network: the one host, when the manifest's network rules name one host. With several,
//     each tool must list the hosts it reaches.
//   - Credentials: the one slot, when the manifest declares one. With several, each tool must
//     list the slots it names.
//
// [Tool.Binding] returns the effective lists, with the defaults applied by Parse.
type Uses struct {
	// Database are names of database functions (database.functions[].name).
	Database []string `json:"database,omitzero"`
	// Network are hosts of network rules, written as network[].host writes them; a host covers
	// every rule with that host.
	Network []string `json:"network,omitzero"`
	// Credentials are names of credential slots (credentials[].name).
	Credentials []string `json:"credentials,omitzero"`
}

// Binding returns what the tool may use while it runs: its manifest's uses with the defaults
// applied (see [Uses]). The lists are never nil for a tool of a parsed manifest; a Tool that
// did not come from Parse may use nothing.
func (t *Tool) Binding() Uses { return t.bound }

// UsesFunction reports whether the tool may run the database function name.
func (t *Tool) UsesFunction(name string) bool { return slices.Contains(t.bound.Database, name) }

// WriteFunctions returns the write functions (read_only: false) the tool may run: every call
// of such a tool needs a human's approval.
func (m *Manifest) WriteFunctions(t *Tool) []string {
	var out []string
	for _, name := range t.bound.Database {
		if f, ok := m.Function(name); ok && !f.ReadOnly {
			out = append(out, name)
		}
	}
	return out
}

// DescribeBinding says in one line what the tool may use, for admins reviewing a manifest:
// "database: find_customer, set_order_status (writes), so every call needs a human's approval;
// network: none; credentials: none".
func (m *Manifest) DescribeBinding(t *Tool) string {
	b := t.bound
	list := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return strings.Join(l, ", ")
	}
	writes := m.WriteFunctions(t)
	fns := make([]string, len(b.Database))
	for i, f := range b.Database {
		fns[i] = f
		if slices.Contains(writes, f) {
			fns[i] += " (writes)"
		}
	}
	db := list(fns)
	if len(writes) > 0 {
		db += ", so every call needs a human's approval"
	}
	return fmt.Sprintf("database: %s; network: %s; credentials: %s", db, list(b.Network), list(b.Credentials))
}

// bindUses resolves every tool's binding (Tool.bound) and reports names that are not declared
// and bindings a manifest must spell out.
func bindUses(m *Manifest, add func(path []string, format string, args ...any)) {
	var hosts, slots, fns []string
	for _, r := range m.Network {
		if !slices.Contains(hosts, r.Host) {
			hosts = append(hosts, r.Host)
		}
	}
	for _, c := range m.Credentials {
		slots = append(slots, c.Name)
	}
	if m.Database != nil {
		for _, f := range m.Database.Functions {
			fns = append(fns, f.Name)
		}
	}
	orNone := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return strings.Join(l, ", ")
	}
	for i := range m.Tools {
		t := &m.Tools[i]
		path := func(field string, j ...int) []string {
			p := []string{"tools", fmt.Sprint(i), "uses", field}
			for _, k := range j {
				p = append(p, fmt.Sprint(k))
			}
			return p
		}
		resolve := func(field string, declared, names []string, what string) []string {
			out := []string{}
			for j, n := range declared {
				if !slices.Contains(names, n) {
					add(path(field, j), "%q is not a %s this manifest declares (declared: %s)", n, what, orNone(names))
					continue
				}
				out = append(out, n)
			}
			return out
		}
		b := Uses{
			Database:    resolve("database", t.Uses.Database, fns, "database function"),
			Network:     resolve("network", t.Uses.Network, hosts, "network rule host"),
			Credentials: resolve("credentials", t.Uses.Credentials, slots, "credential slot"),
		}
		if t.Function != "" && !slices.Contains(b.Database, t.Function) {
			b.Database = append([]string{t.Function}, b.Database...)
		}
		only := func(declared, names []string, bound *[]string, what, example string) {
			switch {
			case declared != nil, len(names) == 0:
			case len(names) == 1:
				*bound = []string{names[0]}
			default:
				add([]string{"tools", fmt.Sprint(i)}, "the manifest declares several %s (%s): say which this tool uses with uses: {%s} ([] for none)",
					what, strings.Join(names, ", "), example)
			}
		}
		only(t.Uses.Network, hosts, &b.Network, "network hosts", "network: [HOST, …]")
		only(t.Uses.Credentials, slots, &b.Credentials, "credential slots", "credentials: [SLOT, …]")
		t.bound = b
	}
}

// compareBinding reports what newer's binding has that older's has not (the tool's own
// function, when it changed, is reported by Compare already).
func compareBinding(older, newer *Tool, add func(field, format string, args ...any)) {
	for _, f := range newer.bound.Database {
		if !slices.Contains(older.bound.Database, f) && (f != newer.Function || f == older.Function) {
			add("database", "tool %s may now run database function %s", newer.Name, f)
		}
	}
	for _, h := range newer.bound.Network {
		if !slices.Contains(older.bound.Network, h) {
			add("network", "tool %s may now reach %s", newer.Name, h)
		}
	}
	for _, c := range newer.bound.Credentials {
		if !slices.Contains(older.bound.Credentials, c) {
			add("credentials", "tool %s may now name credential slot %s", newer.Name, c)
		}
	}
}
