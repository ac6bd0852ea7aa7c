package manifest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// mongoManifest is a manifest with one database function whose body is fn (YAML, indented by
// six spaces under "- name: f").
func mongoManifest(fn string) string {
	return `abi: 1
name: m
version: 1.0.0
publisher: p
description: d
module: {path: m.wasm}
tools:
  - {name: t, function: f, description: t, input_schema: {type: object}}
database:
  functions:
    - name: f
` + fn
}

func TestMongoFunctionParses(t *testing.T) {
	m, err := Parse("m.yaml", []byte(mongoManifest(`      mongo:
        collection: orders
        op: find
        filter: {customer: {$param: customer}, status: open, total: {$gte: {$param: min}}, address: {city: {$param: customer}}}
        projection: {_id: 0, number: 1, total: 1}
        sort: [-created, number]
      params: [{name: customer, schema: {type: string}}, {name: min, schema: {type: number}}]
`)))
	if err != nil {
		t.Fatal(err)
	}
	f := &m.Database.Functions[0]
	if !f.ReadOnly || f.Mongo == nil || f.Mongo.Op != MongoFind {
		t.Fatalf("function = %+v", f)
	}
	r, err := f.Mongo.Render(f, []json.RawMessage{json.RawMessage(`"ada"`), json.RawMessage(`10`)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(map[string]any{"filter": r.Filter, "sort": r.Sort})
	// Keys keep the file's order; the parameter at a field is compared with $eq.
	want := `{"filter":{"customer":{"$eq":"ada"},"status":"open","total":{"$gte":10},"address":{"city":"ada"}},"sort":{"created":-1,"number":1}}`
	if string(got) != want {
		t.Errorf("rendered = %s\nwant       %s", got, want)
	}
	if s := f.Statement(); !strings.Contains(s, `"filter":{"customer":{"$param":"customer"},"status":"open"`) {
		t.Errorf("Statement() = %s, want the operation with its keys in the file's order", s)
	}
}

// Rendering puts a parameter where MongoDB reads a value: whatever its shape, it is wrapped so
// that it cannot be read as an operator or a field path, and an object holding a $-key is
// refused.
func TestMongoRenderKeepsParametersValues(t *testing.T) {
	m, err := Parse("m.yaml", []byte(mongoManifest(`      mongo:
        collection: orders
        op: aggregate
        pipeline:
          - {$match: {customer: {$param: p}, $or: [{a: {$param: p}}, {b: {$in: [{$param: p}]}}]}}
          - {$project: {label: {$param: p}, total: 1}}
          - {$lookup: {from: x, as: y, pipeline: [{$match: {k: {$param: p}}}]}}
      params: [{name: p}]
`)))
	if err != nil {
		t.Fatal(err)
	}
	f := &m.Database.Functions[0]
	r, err := f.Mongo.Render(f, []json.RawMessage{json.RawMessage(`"$secret"`)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r.Pipeline)
	want := `[{"$match":{"customer":{"$eq":"$secret"},"$or":[{"a":{"$eq":"$secret"}},{"b":{"$in":["$secret"]}}]}},` +
		`{"$project":{"label":{"$literal":"$secret"},"total":1}},` +
		`{"$lookup":{"from":"x","as":"y","pipeline":[{"$match":{"k":{"$eq":"$secret"}}}]}}]`
	if string(got) != want {
		t.Errorf("rendered = %s\nwant       %s", got, want)
	}
	// The walker's own output for an operator-shaped value (Render refuses it before that):
	// still under $eq or $literal.
	w := &mongoWalker{names: map[string]int{"p": 0}, values: []any{Doc{{Key: "$gt", Value: ""}}}, used: []bool{false}}
	v, _ := DecodeOrdered([]byte(`[{"$match":{"a":{"$param":"p"}}},{"$project":{"b":{"$param":"p"}}}]`))
	out, _ := json.Marshal(w.walkRoot(v, "pipeline", mongoExpr))
	if string(out) != `[{"$match":{"a":{"$eq":{"$gt":""}}}},{"$project":{"b":{"$literal":{"$gt":""}}}}]` {
		t.Errorf("walker output = %s", out)
	}
	for _, bad := range []string{`{"$gt": ""}`, `[1, {"x": {"$where": "1"}}]`, `{"a\u0000": 1}`, strings.Repeat("[", 5000) + strings.Repeat("]", 5000)} {
		_, err := f.Mongo.Render(f, []json.RawMessage{json.RawMessage(bad)})
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Index != 0 {
			t.Errorf("Render(%s) = %v, want a ParamError for parameter 1", bad, err)
		}
	}
}

// Parse refuses what runs code on the server, what writes in a read, and a parameter anywhere a
// query, an operator, a stage or a field name would come from the agent.
func TestMongoManifestRefusals(t *testing.T) {
	for _, tc := range []struct{ name, fn, says string }{
		{"$where", `      mongo: {collection: c, op: find, filter: {$where: "sleep(100)"}}
`, "$where is not allowed"},
		{"$function in a projection stage", `      mongo: {collection: c, op: aggregate, pipeline: [{$project: {x: {$function: {body: "f", args: [], lang: js}}}}]}
`, "$function is not allowed"},
		{"$accumulator", `      mongo: {collection: c, op: aggregate, pipeline: [{$group: {_id: 1, x: {$accumulator: {}}}}]}
`, "$accumulator is not allowed"},
		{"$out", `      mongo: {collection: c, op: aggregate, pipeline: [{$match: {}}, {$out: stolen}]}
`, "$out is not allowed"},
		{"$merge nested in $facet", `      mongo: {collection: c, op: aggregate, pipeline: [{$facet: {a: [{$merge: {into: x}}]}}]}
`, "$merge is not allowed"},
		{"param as $and's list", `      mongo: {collection: c, op: find, filter: {$and: {$param: q}}}
      params: [{name: q}]
`, "$and"},
		{"param in $or's list", `      mongo: {collection: c, op: find, filter: {$or: [{$param: q}]}}
      params: [{name: q}]
`, "cannot be a parameter"},
		{"param as $not's operand", `      mongo: {collection: c, op: find, filter: {a: {$not: {$param: q}}}}
      params: [{name: q}]
`, "cannot be a parameter"},
		{"param as $elemMatch's operand", `      mongo: {collection: c, op: find, filter: {a: {$elemMatch: {$param: q}}}}
      params: [{name: q}]
`, "cannot be a parameter"},
		{"param as the whole filter", `      mongo: {collection: c, op: find, filter: {$param: q}}
      params: [{name: q}]
`, "whole filter"},
		{"param as a stage", `      mongo: {collection: c, op: aggregate, pipeline: [{$param: q}]}
      params: [{name: q}]
`, "stage cannot be a parameter"},
		{"param in a projection", `      mongo: {collection: c, op: find, projection: {a: {$param: q}}}
      params: [{name: q}]
`, "cannot stand here"},
		{"undeclared param", `      mongo: {collection: c, op: find, filter: {a: {$param: nope}}}
`, `"nope" is not declared`},
		{"$param with company", `      mongo: {collection: c, op: find, filter: {a: {$param: q, x: 1}}}
      params: [{name: q}]
`, "alone in its mapping"},
		{"unused param", `      mongo: {collection: c, op: find}
      params: [{name: q}]
`, "no {$param: q} uses it"},
		{"insert in a read", `      mongo: {collection: c, op: insert_one, document: {a: 1}}
`, "read_only: false"},
		{"find that writes", `      mongo: {collection: c, op: find}
      read_only: false
`, "only reads"},
		{"replacement update", `      mongo: {collection: c, op: update_one, filter: {a: 1}, update: {a: 2}}
      read_only: false
`, "not \"a\""},
		{"$rename", `      mongo: {collection: c, op: update_one, filter: {a: 1}, update: {$rename: {a: b}}}
      read_only: false
`, "not \"$rename\""},
		{"$pull reads a query", `      mongo: {collection: c, op: update_one, filter: {a: 1}, update: {$pull: {a: 1}}}
      read_only: false
`, "not \"$pull\""},
		{"upsert on find", `      mongo: {collection: c, op: find, upsert: true}
`, "takes no upsert"},
		{"pipeline on find", `      mongo: {collection: c, op: find, pipeline: [{$match: {}}]}
`, "takes no pipeline"},
		{"$-key in an inserted document", `      mongo: {collection: c, op: insert_one, document: {$set: {a: 1}}}
      read_only: false
`, "cannot start with $"},
		{"sort on an operator", `      mongo: {collection: c, op: find, sort: [$natural]}
`, "not a field name"},
		{"sql and mongo", `      sql: SELECT 1
      mongo: {collection: c, op: find}
`, "not both"},
		{"unknown op", `      mongo: {collection: c, op: drop}
`, "op"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(mongoManifest(tc.fn)))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Parse = %v, want an error saying %q", err, tc.says)
			}
		})
	}
}

// An update that changes a MongoDB operation asks the admin again, showing the new operation.
func TestMongoChangeNeedsReview(t *testing.T) {
	parse := func(filter string) *Manifest {
		m, err := Parse("m.yaml", []byte(mongoManifest(`      mongo: {collection: c, op: find, filter: `+filter+`}
      params: [{name: q}]
`)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	old := parse(`{owner: {$param: q}, status: open}`)
	if ch := Compare(old, parse(`{owner: {$param: q}, status: open}`)); len(ch) != 0 {
		t.Errorf("Compare(same) = %v, want no change", ch)
	}
	ch := Compare(old, parse(`{owner: {$param: q}}`))
	if len(ch) != 1 || ch[0].Kind != ChangeDatabase || !strings.Contains(ch[0].Detail, `"filter":{"owner":{"$param":"q"}}`) {
		t.Errorf("Compare(wider filter) = %v, want one database change showing the new operation", ch)
	}
}
