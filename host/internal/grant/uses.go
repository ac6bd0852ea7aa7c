package grant

// confirmWrites marks every callable tool that may run a granted write function (its
// manifest binding, tools[].uses.database, which includes the tool's own function) as needing
// a human's approval of each call: a write function is approved with the exact call that runs
// it, whatever tool that is (DESIGN.md invariant 9). The host also refuses a write function in a
// call no human approved, should a policy ever miss one.
func confirmWrites(p *Policy) {
	for name, t := range p.Tools {
		for _, fn := range t.Binding().Database {
			if f, ok := p.Functions[fn]; ok && !f.ReadOnly {
				p.Confirm[name] = true
			}
		}
	}
}
