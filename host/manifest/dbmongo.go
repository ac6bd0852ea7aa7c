package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MongoOp is a database function's MongoDB operation: one command on one collection, written out
// by the publisher and reviewed by the admin who grants it. Its templates are MongoDB documents
// in which {"$param": NAME} stands for the value of the parameter NAME, and nothing else: a
// parameter is only ever a value, never a key, an operator, a stage or a field path.
//
//	mongo:
//	  collection: orders
//	  op: find
//	  filter: {customer: {$param: customer}, status: open}
//	  projection: {_id: 0, number: 1, total: 1}
//	  sort: [-created, number]
//
// Render puts each parameter where MongoDB reads a value and nothing more:
//   - as a field's value in a query (filter, a $match stage): {field: {$eq: VALUE}}, so an object
//     such as {"$gt": ""} is compared as a document, not read as an operator;
//   - as the operand of a comparison in a query ($gt, $in …), in an inserted document and in
//     an update operator's values: as is (MongoDB reads these as data);
//   - in an aggregation expression ($expr, a stage other than $match): {$literal: VALUE}, so a
//     string "$secret" is a string, not a field path;
//
// and refuses (invalid_arguments) an object parameter holding a key that starts with "$" at any
// depth, so no operator ever comes from an agent even where MongoDB would read one in data
// ($each in $push, $elemMatch in $all).
type MongoOp struct {
	// Collection is the collection the operation runs on.
	Collection string `json:"collection"`
	// Op is find, aggregate (reads) or insert_one, update_one (writes).
	Op string `json:"op"`
	// Filter selects documents (find, update_one); default {} for find.
	Filter json.RawMessage `json:"filter,omitempty"`
	// Projection picks the fields find returns (no parameters).
	Projection json.RawMessage `json:"projection,omitempty"`
	// Sort orders find's documents: field names, "-field" for descending.
	Sort []string `json:"sort,omitempty"`
	// Pipeline is aggregate's fixed list of stages; $out and $merge are refused.
	Pipeline json.RawMessage `json:"pipeline,omitempty"`
	// Document is the document insert_one inserts.
	Document json.RawMessage `json:"document,omitempty"`
	// Update is update_one's update, operators only ($set, $inc …).
	Update json.RawMessage `json:"update,omitempty"`
	// Upsert lets update_one insert when nothing matches (default false).
	Upsert bool `json:"upsert,omitempty"`
}

// Mongo operations and their kind.
const (
	MongoFind      = "find"
	MongoAggregate = "aggregate"
	MongoInsertOne = "insert_one"
	MongoUpdateOne = "update_one"
)

// mongoDenied are operators that run code on the server or, in a read, write: refused anywhere
// in a template at parse time and again before a function runs.
var mongoDenied = map[string]string{
	"$where":       "runs JavaScript on the server",
	"$function":    "runs JavaScript on the server",
	"$accumulator": "runs JavaScript on the server",
	"$out":         "writes a collection (a database function that writes is insert_one or update_one)",
	"$merge":       "writes a collection (a database function that writes is insert_one or update_one)",
}

// mongoUpdateOps are the update operators update_one may use: each takes {field: value} whose
// values MongoDB reads as data ($pull, which reads a query, and $rename, whose values are field
// names, are not among them).
var mongoUpdateOps = []string{"$set", "$setOnInsert", "$unset", "$inc", "$mul", "$min", "$max", "$push", "$addToSet", "$pullAll", "$pop", "$currentDate"}

// Field is one key and value of an ordered document (Doc).
type Field struct {
	Key   string
	Value any
}

// Doc is a JSON object with its keys in order (MongoDB reads sort keys, and stages, in order).
// A rendered template is built of nil, bool, json.Number, string, []any and Doc.
type Doc []Field

// MarshalJSON writes the fields in order.
func (d Doc) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range d {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Key)
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// maxMongoDepth bounds the nesting of a template or an argument: MongoDB itself accepts 100
// levels of documents.
const maxMongoDepth = 100

// DecodeOrdered reads one JSON value keeping the order of object keys: nil, bool, json.Number,
// string, []any or Doc. Nothing in the text is interpreted (no extended JSON: {"$oid": …} is a
// document with a key "$oid"). Values nested deeper than 100 levels are an error.
func DecodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxMongoDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxMongoDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			d := Doc{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d = append(d, Field{Key: k.(string), Value: v})
			}
			_, err := dec.Token()
			return d, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return t, nil // nil, bool, json.Number, string
	}
}

// orderedJSON is the JSON text of a YAML value with its keys in the file's order (the document's
// own values are maps, which lose it).
func (d *document) orderedJSON(n *yaml.Node, path []string) (json.RawMessage, error) {
	var conv func(n *yaml.Node, path []string) any
	conv = func(n *yaml.Node, path []string) any {
		switch n.Kind {
		case yaml.MappingNode:
			doc := Doc{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				doc = append(doc, Field{Key: n.Content[i].Value, Value: conv(n.Content[i+1], append(path, n.Content[i].Value))})
			}
			return doc
		case yaml.SequenceNode:
			arr := []any{}
			for i, e := range n.Content {
				arr = append(arr, conv(e, append(path, strconv.Itoa(i))))
			}
			return arr
		default:
			return d.scalar(n, path)
		}
	}
	return json.Marshal(conv(n, path))
}

// mongoContext is how MongoDB reads the part of a template being walked.
type mongoContext int

const (
	mongoQuery    mongoContext = iota // a query document: {field: value or {$op: …}, $and: […]}
	mongoOperator                     // a field's operator document: {$gt: …, $in: […]}
	mongoExpr                         // an aggregation expression
	mongoData                         // values MongoDB takes as data
	mongoFixed                        // no parameter may appear (projection)
)

// ParamError is a parameter value Render refuses; Index is its position.
type ParamError struct {
	Index  int
	Reason string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %d %s", e.Index+1, e.Reason) }

// mongoWalker walks a template: at parse time (values nil) it records the problems and the
// parameters used; at run time it returns the rendered value.
type mongoWalker struct {
	names  map[string]int
	values []any // decoded parameter values; nil at parse time
	used   []bool
	probs  []mongoProblem
}

type mongoProblem struct {
	path []string
	msg  string
}

func (w *mongoWalker) problem(path []string, format string, args ...any) {
	w.probs = append(w.probs, mongoProblem{path: slices.Clone(path), msg: fmt.Sprintf(format, args...)})
}

// param returns the index of the parameter v references, or -1 when v is not {"$param": …}.
func (w *mongoWalker) param(v any, path []string) int {
	d, ok := v.(Doc)
	if !ok || !slices.ContainsFunc(d, func(f Field) bool { return f.Key == "$param" }) {
		return -1
	}
	name, isString := d[0].Value.(string)
	if len(d) != 1 || !isString {
		w.problem(path, `a parameter reference is {$param: NAME}, alone in its mapping, with NAME one of params[].name`)
		return -2
	}
	i, ok := w.names[name]
	if !ok {
		w.problem(path, "$param %q is not declared under params", name)
		return -2
	}
	w.used[i] = true
	return i
}

func (w *mongoWalker) walk(v any, c mongoContext, path []string) any {
	if i := w.param(v, path); i != -1 {
		var val any
		if i >= 0 && w.values != nil {
			val = w.values[i]
		}
		switch c {
		case mongoQuery:
			return Doc{{Key: "$eq", Value: val}}
		case mongoExpr:
			return Doc{{Key: "$literal", Value: val}}
		case mongoFixed:
			w.problem(path, "a parameter cannot stand here: projections, and the operands of $and, $or, $nor, $not, $elemMatch and $jsonSchema, are fixed")
		}
		return val
	}
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = w.walk(e, c, append(path, strconv.Itoa(i)))
		}
		return out
	case Doc:
		out := make(Doc, len(x))
		for i, f := range x {
			p := append(path, f.Key)
			if why, denied := mongoDenied[f.Key]; denied {
				w.problem(p, "%s is not allowed: it %s", f.Key, why)
			}
			out[i] = Field{Key: f.Key, Value: w.walk(f.Value, w.inner(c, x, f, p), p)}
		}
		return out
	default:
		return v
	}
}

// inner is the context of field f's value in document d, itself read in context c.
func (w *mongoWalker) inner(c mongoContext, d Doc, f Field, path []string) mongoContext {
	switch c {
	case mongoQuery:
		switch f.Key {
		case "$and", "$or", "$nor":
			if _, ok := f.Value.([]any); !ok {
				w.problem(path, "%s takes a list of query documents", f.Key)
				return mongoFixed
			}
			return mongoQuery // each element is a query
		case "$expr":
			return mongoExpr
		}
		if strings.HasPrefix(f.Key, "$") {
			return w.inner(mongoOperator, d, f, path)
		}
		switch sub := f.Value.(type) {
		case Doc:
			switch {
			case len(sub) > 0 && sub[0].Key == "$param":
				return mongoQuery // a parameter at a field: {$eq: …}
			case len(sub) > 0 && strings.HasPrefix(sub[0].Key, "$"):
				return mongoOperator
			}
			return mongoData // an embedded document, compared whole
		case []any:
			return mongoData // an array, compared whole
		}
		return mongoQuery
	case mongoOperator:
		switch f.Key {
		case "$not":
			return mongoOperator
		case "$elemMatch":
			return mongoQuery
		}
		return mongoData
	case mongoExpr:
		if f.Key == "$match" { // a sub-pipeline's $match stage ($lookup, $facet, $unionWith)
			return mongoQuery
		}
		return mongoExpr
	}
	return c
}

// mongoOperandFixed reports the operators whose operand cannot be a parameter: it is a query (a
// logical operator's list, $not's, $elemMatch's and $jsonSchema's document).
func mongoOperandFixed(key string) bool {
	switch key {
	case "$and", "$or", "$nor", "$not", "$elemMatch", "$jsonSchema":
		return true
	}
	return false
}

// templates returns the operation's templates with how each is read, for walking.
func (op *MongoOp) templates() []struct {
	field string
	raw   json.RawMessage
	ctx   mongoContext
} {
	return []struct {
		field string
		raw   json.RawMessage
		ctx   mongoContext
	}{
		{"filter", op.Filter, mongoQuery},
		{"projection", op.Projection, mongoFixed},
		{"pipeline", op.Pipeline, mongoExpr},
		{"document", op.Document, mongoData},
		{"update", op.Update, mongoData},
	}
}

// MongoRendered is an operation with its parameters in place, ready to send.
type MongoRendered struct {
	Filter, Projection, Document, Update Doc
	Pipeline                             []any
	Sort                                 Doc
}

// Render returns the operation's documents with params (one JSON value per declared parameter,
// already checked against their schemas) in place. An object parameter with a key that starts
// with "$" (or holds a NUL) is a *ParamError.
func (op *MongoOp) Render(f *DBFunction, params []json.RawMessage) (*MongoRendered, error) {
	if len(params) != len(f.Params) {
		return nil, fmt.Errorf("function %s takes %d parameters, got %d", f.Name, len(f.Params), len(params))
	}
	w := &mongoWalker{names: map[string]int{}, values: make([]any, len(params)), used: make([]bool, len(f.Params))}
	for i, p := range f.Params {
		w.names[p.Name] = i
	}
	for i, raw := range params {
		v, err := DecodeOrdered(raw)
		if err != nil {
			return nil, &ParamError{Index: i, Reason: "is not a JSON value of at most 100 nested levels"}
		}
		if key, bad := operatorKey(v); bad {
			return nil, &ParamError{Index: i, Reason: fmt.Sprintf("holds the key %q: keys that start with $ (MongoDB operators) or hold a NUL are not accepted in values", key)}
		}
		w.values[i] = v
	}
	out := &MongoRendered{}
	for _, t := range op.templates() {
		if len(t.raw) == 0 {
			continue
		}
		v, err := DecodeOrdered(t.raw)
		if err != nil {
			return nil, fmt.Errorf("mongo.%s: %w", t.field, err)
		}
		r := w.walkRoot(v, t.field, t.ctx)
		switch t.field {
		case "filter":
			out.Filter, _ = r.(Doc)
		case "projection":
			out.Projection, _ = r.(Doc)
		case "pipeline":
			out.Pipeline, _ = r.([]any)
		case "document":
			out.Document, _ = r.(Doc)
		case "update":
			out.Update, _ = r.(Doc)
		}
	}
	if len(w.probs) > 0 {
		// Parse refuses such a manifest; this holds for one built otherwise.
		return nil, fmt.Errorf("mongo.%s: %s", strings.Join(w.probs[0].path, "."), w.probs[0].msg)
	}
	for _, s := range op.Sort {
		if name, desc := strings.CutPrefix(s, "-"); desc {
			out.Sort = append(out.Sort, Field{Key: name, Value: json.Number("-1")})
		} else {
			out.Sort = append(out.Sort, Field{Key: s, Value: json.Number("1")})
		}
	}
	return out, nil
}

// walkRoot walks one template. A pipeline's stages are read one by one: $match as a query,
// every other stage as expressions.
func (w *mongoWalker) walkRoot(v any, field string, c mongoContext) any {
	path := []string{field}
	if w.isParam(v) {
		w.problem(path, "a parameter cannot be the whole %s: write the document, with parameters as its values", field)
		return nil
	}
	if field != "pipeline" {
		return w.walkChecked(v, c, path)
	}
	stages, _ := v.([]any)
	out := make([]any, len(stages))
	for i, s := range stages {
		if w.isParam(s) {
			w.problem(append(path, strconv.Itoa(i)), "a stage cannot be a parameter: a pipeline is fixed")
			continue
		}
		out[i] = w.walkChecked(s, mongoExpr, append(path, strconv.Itoa(i)))
	}
	return out
}

// walkChecked is walk with the operands mongoOperandFixed names refused as parameters.
func (w *mongoWalker) walkChecked(v any, c mongoContext, path []string) any {
	w.fixedOperands(v, path)
	return w.walk(v, c, path)
}

func (w *mongoWalker) fixedOperands(v any, path []string) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			w.fixedOperands(e, append(path, strconv.Itoa(i)))
		}
	case Doc:
		for _, f := range x {
			p := append(path, f.Key)
			list, _ := f.Value.([]any)
			if mongoOperandFixed(f.Key) && (w.isParam(f.Value) || slices.ContainsFunc(list, w.isParam)) {
				w.problem(p, "the operand of %s cannot be a parameter: it is a query, and a query never comes from an agent", f.Key)
			}
			w.fixedOperands(f.Value, p)
		}
	}
}

func (w *mongoWalker) isParam(v any) bool {
	d, ok := v.(Doc)
	return ok && len(d) > 0 && d[0].Key == "$param"
}

// operatorKey finds a key that starts with "$" or holds a NUL in v, at any depth.
func operatorKey(v any) (string, bool) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if k, bad := operatorKey(e); bad {
				return k, true
			}
		}
	case Doc:
		for _, f := range x {
			if strings.HasPrefix(f.Key, "$") || strings.IndexByte(f.Key, 0) >= 0 {
				return f.Key, true
			}
			if k, bad := operatorKey(f.Value); bad {
				return k, true
			}
		}
	}
	return "", false
}

// checkMongo applies the rules of a MongoDB operation to database.functions[i]: the templates'
// key order is taken from the file, and each is walked as Render will.
func (d *document) checkMongo(i int, f *DBFunction) []*Error {
	base := []string{"database", "functions", strconv.Itoa(i), "mongo"}
	var errs []*Error
	add := func(path []string, format string, args ...any) {
		errs = append(errs, d.at(append(slices.Clone(base), path...), format, args...))
	}
	op := f.Mongo
	if f.SQL != "" {
		add(nil, "a database function has sql or mongo, not both")
	}
	for _, t := range []struct {
		field string
		raw   *json.RawMessage
	}{{"filter", &op.Filter}, {"projection", &op.Projection}, {"pipeline", &op.Pipeline}, {"document", &op.Document}, {"update", &op.Update}} {
		if n := d.nodes[jsonPointer(append(slices.Clone(base), t.field))]; n != nil {
			raw, err := d.orderedJSON(n, append(slices.Clone(base), t.field))
			if err != nil {
				add([]string{t.field}, "%v", err)
				continue
			}
			*t.raw = raw
		}
	}
	allowed := map[string][]string{
		MongoFind:      {"filter", "projection", "sort"},
		MongoAggregate: {"pipeline"},
		MongoInsertOne: {"document"},
		MongoUpdateOne: {"filter", "update", "upsert"},
	}[op.Op]
	set := map[string]bool{"filter": op.Filter != nil, "projection": op.Projection != nil, "sort": op.Sort != nil,
		"pipeline": op.Pipeline != nil, "document": op.Document != nil, "update": op.Update != nil, "upsert": op.Upsert}
	for _, k := range []string{"filter", "projection", "sort", "pipeline", "document", "update", "upsert"} {
		if set[k] && !slices.Contains(allowed, k) {
			add([]string{k}, "op %s takes no %s (it takes %s)", op.Op, k, strings.Join(allowed, ", "))
		}
	}
	write := op.Op == MongoInsertOne || op.Op == MongoUpdateOne
	switch {
	case write && f.ReadOnly:
		add([]string{"op"}, "%s writes: set read_only: false on the function (its tools then need a human's approval)", op.Op)
	case !write && !f.ReadOnly:
		add([]string{"op"}, "%s only reads: remove read_only: false", op.Op)
	}
	for _, need := range map[string][]string{MongoAggregate: {"pipeline"}, MongoInsertOne: {"document"}, MongoUpdateOne: {"filter", "update"}}[op.Op] {
		if !set[need] {
			add(nil, "op %s needs %s", op.Op, need)
		}
	}
	for j, s := range op.Sort {
		if name := strings.TrimPrefix(s, "-"); name == "" || strings.HasPrefix(name, "$") {
			add([]string{"sort", strconv.Itoa(j)}, "%q is not a field name (write field, or -field for descending)", s)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	w := &mongoWalker{names: map[string]int{}, used: make([]bool, len(f.Params))}
	for j, p := range f.Params {
		w.names[p.Name] = j
	}
	for _, t := range op.templates() {
		if len(t.raw) == 0 {
			continue
		}
		v, err := DecodeOrdered(t.raw)
		if err != nil {
			add([]string{t.field}, "%v", err)
			continue
		}
		if _, isDoc := v.(Doc); t.field != "pipeline" && !isDoc {
			add([]string{t.field}, "must be a mapping")
			continue
		}
		switch t.field {
		case "pipeline":
			stages, ok := v.([]any)
			if !ok || len(stages) == 0 {
				add([]string{t.field}, "must be a list of stages, each a mapping with one key such as $match")
				continue
			}
			for j, s := range stages {
				if st, ok := s.(Doc); !ok || len(st) != 1 || !strings.HasPrefix(st[0].Key, "$") {
					add([]string{t.field, strconv.Itoa(j)}, "a stage is a mapping with one key that starts with $, such as $match")
				}
			}
		case "document":
			for _, fld := range v.(Doc) {
				if strings.HasPrefix(fld.Key, "$") {
					add([]string{t.field, fld.Key}, "an inserted document's field names cannot start with $")
				}
			}
		case "update":
			for _, fld := range v.(Doc) {
				if !slices.Contains(mongoUpdateOps, fld.Key) {
					add([]string{t.field, fld.Key}, "update_one takes the update operators %s, not %q (a replacement document or an update pipeline is not supported)", strings.Join(mongoUpdateOps, ", "), fld.Key)
				} else if _, ok := fld.Value.(Doc); !ok {
					add([]string{t.field, fld.Key}, "%s takes a mapping of field: value", fld.Key)
				} else if (fld.Key == "$unset" || fld.Key == "$currentDate") && paramUsed(fld.Value) {
					add([]string{t.field, fld.Key}, "%s takes no parameters", fld.Key)
				}
			}
		}
		w.walkRoot(v, t.field, t.ctx)
	}
	for _, pr := range w.probs {
		add(pr.path, "%s", pr.msg)
	}
	for j, used := range w.used {
		if !used && len(w.probs) == 0 {
			add(nil, "parameter %s is declared but no {$param: %s} uses it: use it, or remove it from params", f.Params[j].Name, f.Params[j].Name)
		}
	}
	return errs
}

func paramUsed(v any) bool {
	switch x := v.(type) {
	case []any:
		return slices.ContainsFunc(x, paramUsed)
	case Doc:
		return slices.ContainsFunc(x, func(f Field) bool { return f.Key == "$param" || paramUsed(f.Value) })
	}
	return false
}
