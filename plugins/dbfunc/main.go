// Command dbfunc is the airlock connector for bounded database functions: a thin plugin whose one
// export, run, hands a tool's database function to the host and shapes the rows for the agent.
//
// Agents never send SQL. A manifest declares named, parameterised statements under
// database.functions and tools that run them (a tool's function field); an admin reviews the SQL
// when granting. For such a tool the host passes this plugin
//
//	{"function": "find_customer", "params": ["ada@example.com"]}
//
// (the tool's arguments in the order of the function's params), and run calls airlock_db with it
// and returns
//
//	{"columns": ["id", "name"], "rows": [{"id": 1, "name": "Ada"}], "truncated": false, "affected": 0}
//
// Build it as a WebAssembly module (make plugins):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o dbfunc.wasm ./plugins/dbfunc
//
// The logic (dbfunc.go) has no build tag and is tested natively with pdktest; the host side
// (read-only transactions, timeouts, caps, the DSN) is in host/internal/dbfunc. See README.md.
package main

func main() {} // required by the compiler; never runs in a c-shared module
