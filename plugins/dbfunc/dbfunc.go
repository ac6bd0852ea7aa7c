package main

import (
	"encoding/json"

	"github.com/airlock-dev/airlock/pdk"
)

// input is what the host hands a function tool: the function and its parameters in order.
type input struct {
	Function string            `json:"function"`
	Params   []json.RawMessage `json:"params"`
}

// result is the tool's output.
type result struct {
	// Columns are the column names in the statement's order (rows are objects, which have none).
	Columns []string `json:"columns"`
	// Rows holds one object per row, column name to value.
	Rows []map[string]any `json:"rows"`
	// Truncated says more rows matched than the function may return (its max_rows or
	// max_bytes); Notice then says so in words.
	Truncated bool   `json:"truncated"`
	Notice    string `json:"notice,omitempty"`
	// Affected is the number of rows a write function changed (0 for reads).
	Affected int64 `json:"affected"`
}

// truncatedNotice is the marker an agent reads when the result was cut.
const truncatedNotice = "more rows matched than this function may return; only the first ones are listed. Narrow the arguments to see the rest"

// run runs the tool's database function through the host and returns its rows.
func run() error {
	var in input
	if err := pdk.Input(&in); err != nil {
		return err
	}
	if in.Function == "" {
		return pdk.Fatal(pdk.CodeBadRequest, "this tool is not bound to a database function: the manifest must set the tool's function field")
	}
	params := make([]any, len(in.Params))
	for i, p := range in.Params {
		params[i] = p // kept as raw JSON, so numbers keep their precision
	}
	resp, err := pdk.DB(pdk.DBRequest{Function: in.Function, Params: params})
	if err != nil {
		return err // the host's refusal or failure: already agent-readable
	}
	out := result{Columns: resp.Columns, Rows: make([]map[string]any, 0, len(resp.Rows)),
		Truncated: resp.Truncated, Affected: resp.Affected}
	if out.Columns == nil {
		out.Columns = []string{}
	}
	for _, row := range resp.Rows {
		obj := make(map[string]any, len(row))
		for i, v := range row {
			if i < len(resp.Columns) {
				obj[resp.Columns[i]] = v
			}
		}
		out.Rows = append(out.Rows, obj)
	}
	if out.Truncated {
		out.Notice = truncatedNotice
	}
	return pdk.Output(out)
}
