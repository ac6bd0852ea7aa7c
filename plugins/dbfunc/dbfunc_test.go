package main

import (
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

func TestRunShapesRows(t *testing.T) {
	h := pdktest.New(t)
	var got pdk.DBRequest
	h.HandleDB(func(req pdk.DBRequest) pdk.DBResponse {
		got = req
		return pdk.DBResponse{Columns: []string{"id", "name"}, Rows: [][]any{{1, "Ada"}, {2, nil}}, Truncated: true}
	})
	h.SetInput(map[string]any{"function": "find_customer", "params": []any{"ada@example.com"}})
	var out result
	if err := h.CallJSON(run, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got.Function != "find_customer" || len(got.Params) != 1 || got.Params[0] != "ada@example.com" {
		t.Errorf("airlock_db request = %+v, want find_customer [ada@example.com]", got)
	}
	if len(out.Rows) != 2 || out.Rows[0]["name"] != "Ada" || out.Rows[1]["name"] != nil || out.Rows[0]["id"] != float64(1) {
		t.Errorf("rows = %v", out.Rows)
	}
	if strings.Join(out.Columns, ",") != "id,name" || !out.Truncated || out.Notice == "" {
		t.Errorf("columns %v truncated %v notice %q, want id,name true and a notice", out.Columns, out.Truncated, out.Notice)
	}
}

func TestRunEmptyResultIsAnEmptyList(t *testing.T) {
	h := pdktest.New(t)
	h.HandleDB(func(pdk.DBRequest) pdk.DBResponse { return pdk.DBResponse{Affected: 3} })
	h.SetInput(map[string]any{"function": "set_order_status", "params": []any{1, "paid"}})
	b, err := h.Call(run)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"columns":[],"rows":[],"truncated":false,"affected":3}` {
		t.Errorf("output = %s", b)
	}
}

func TestRunPassesHostRefusalsThrough(t *testing.T) {
	h := pdktest.New(t)
	h.HandleDB(func(pdk.DBRequest) pdk.DBResponse {
		return pdk.DBResponse{Error: &pdk.Error{Code: "not_granted", Category: pdk.CategoryFatal, Message: "database function x is not granted"}}
	})
	h.SetInput(map[string]any{"function": "x", "params": []any{}})
	_, err := h.Call(run)
	if err == nil || err.Code != "not_granted" || err.Category != pdk.CategoryFatal {
		t.Fatalf("error = %+v, want the host's not_granted", err)
	}
	h.SetInput(map[string]any{"params": []any{}})
	if _, err := h.Call(run); err == nil || err.Category != pdk.CategoryFatal {
		t.Fatalf("input without a function: error = %+v, want fatal", err)
	}
}

func TestExportsMatchManifest(t *testing.T) {
	exports, err := os.ReadFile("exports_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(exports), "//go:wasmexport run\n") {
		t.Error("exports_wasip1.go has no //go:wasmexport run")
	}
}
