package fakesalesforce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// IDs of the seed records.
const (
	Acme    = "001D00000000001AAA" // Account Acme Corporation
	Globex  = "001D00000000002AAA" // Account Globex
	Initech = "001D00000000003AAA" // Account Initech

	Coyote  = "003D00000000001AAA" // Contact Wile E. Coyote at Acme
	Scorpio = "003D00000000002AAA" // Contact Hank Scorpio at Globex

	OppProspecting = "006D00000000001AAA" // Opportunity in Prospecting (Acme)
	OppNegotiation = "006D00000000002AAA" // Opportunity in Negotiation/Review (Globex)
	OppClosedWon   = "006D00000000003AAA" // Opportunity in Closed Won (Initech)
	OppClosedLost  = "006D00000000004AAA" // Opportunity in Closed Lost (Acme)

	CaseAnvil = "500D00000000001AAA" // Case about Acme's anvils

	AcmeOrder  = "801D00000000001AAA" // Order of Acme (Draft)
	SalesGroup = "00GD00000000001AAA" // Group "Sales Team"
)

// Stages are the Opportunity StageName values the org accepts (Salesforce's standard sales
// process), in order.
var Stages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
	"Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review",
	"Closed Won", "Closed Lost"}

type fieldType int

const (
	tString fieldType = iota
	tID
	tRef // a reference to another record's ID
	tNumber
	tBool
	tDate
	tDateTime
)

func (t fieldType) String() string {
	return [...]string{"string", "id", "reference", "double", "boolean", "date", "datetime"}[t]
}

type field struct {
	name     string
	typ      fieldType
	required bool     // on create
	readOnly bool     // neither createable nor updateable
	picklist []string // restricted picklist values
	maxLen   int      // strings; 0 means 255
	refTo    string   // tRef: the object referenced ("" for any)
}

type object struct {
	name   string
	prefix string
	fields []field
}

func (o *object) field(name string) (*field, bool) {
	for i := range o.fields {
		if strings.EqualFold(o.fields[i].name, name) {
			return &o.fields[i], true
		}
	}
	return nil, false
}

// relName is the relationship name of a reference field: AccountId → Account, ParentId →
// Parent, Invoice__c → Invoice__r.
func (f *field) relName() string {
	if base, ok := strings.CutSuffix(f.name, "__c"); ok {
		return base + "__r"
	}
	return strings.TrimSuffix(f.name, "Id")
}

// target is the object a reference field points to: the Name view for a polymorphic one.
func (f *field) target() *object {
	if f.refTo == "" {
		return nameObject
	}
	return schema[strings.ToLower(f.refTo)]
}

// relationship finds the reference field whose relationship name is rel.
func (o *object) relationship(rel string) (*field, bool) {
	for i := range o.fields {
		if f := &o.fields[i]; f.typ == tRef && strings.EqualFold(f.relName(), rel) {
			return f, true
		}
	}
	return nil, false
}

// nameObject is what a polymorphic relationship (Note.Parent) offers: Salesforce's Name object.
var nameObject = &object{name: "Name", fields: []field{
	{name: "Id", typ: tID, readOnly: true}, {name: "Name", typ: tString, readOnly: true}, {name: "Type", typ: tString, readOnly: true},
}}

// nameField is the field holding an object's record name (Name, or CaseNumber, OrderNumber, …).
func nameField(obj string) string {
	switch obj {
	case "Case":
		return "CaseNumber"
	case "Order":
		return "OrderNumber"
	case "Note":
		return "Title"
	}
	return "Name"
}

var common = []field{
	{name: "Id", typ: tID, readOnly: true},
	{name: "CreatedDate", typ: tDateTime, readOnly: true},
	{name: "LastModifiedDate", typ: tDateTime, readOnly: true},
}

// schema is the org's data model: the fields the fake knows of each object.
var schema = map[string]*object{
	"account": {name: "Account", prefix: "001", fields: append(slices.Clone(common),
		field{name: "Name", typ: tString, required: true},
		field{name: "Industry", typ: tString},
		field{name: "AnnualRevenue", typ: tNumber},
		field{name: "NumberOfEmployees", typ: tNumber},
		field{name: "Website", typ: tString},
		field{name: "Phone", typ: tString},
		field{name: "BillingCity", typ: tString},
		field{name: "Description", typ: tString, maxLen: 32000},
	)},
	"contact": {name: "Contact", prefix: "003", fields: append(slices.Clone(common),
		field{name: "FirstName", typ: tString},
		field{name: "LastName", typ: tString, required: true},
		field{name: "Name", typ: tString, readOnly: true},
		field{name: "Email", typ: tString},
		field{name: "Phone", typ: tString},
		field{name: "Title", typ: tString},
		field{name: "AccountId", typ: tRef, refTo: "Account"},
	)},
	"lead": {name: "Lead", prefix: "00Q", fields: append(slices.Clone(common),
		field{name: "FirstName", typ: tString},
		field{name: "LastName", typ: tString, required: true},
		field{name: "Name", typ: tString, readOnly: true},
		field{name: "Company", typ: tString, required: true},
		field{name: "Email", typ: tString},
		field{name: "Status", typ: tString, picklist: []string{"Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"}},
	)},
	"opportunity": {name: "Opportunity", prefix: "006", fields: append(slices.Clone(common),
		field{name: "Name", typ: tString, required: true},
		field{name: "StageName", typ: tString, required: true, picklist: Stages},
		field{name: "CloseDate", typ: tDate, required: true},
		field{name: "Amount", typ: tNumber},
		field{name: "Probability", typ: tNumber},
		field{name: "AccountId", typ: tRef, refTo: "Account"},
		field{name: "IsClosed", typ: tBool, readOnly: true},
		field{name: "IsWon", typ: tBool, readOnly: true},
		field{name: "Description", typ: tString, maxLen: 32000},
	)},
	"case": {name: "Case", prefix: "500", fields: append(slices.Clone(common),
		field{name: "CaseNumber", typ: tString, readOnly: true},
		field{name: "Subject", typ: tString},
		field{name: "Status", typ: tString, picklist: []string{"New", "Working", "Escalated", "Closed"}},
		field{name: "Priority", typ: tString, picklist: []string{"High", "Medium", "Low"}},
		field{name: "Origin", typ: tString},
		field{name: "AccountId", typ: tRef, refTo: "Account"},
		field{name: "ContactId", typ: tRef, refTo: "Contact"},
		field{name: "IsClosed", typ: tBool, readOnly: true},
		field{name: "Description", typ: tString, maxLen: 32000},
	)},
	// Order and Group are standard objects whose names are SOQL keywords (GROUP is even a
	// reserved word): Salesforce reads them as names after FROM.
	"order": {name: "Order", prefix: "801", fields: append(slices.Clone(common),
		field{name: "OrderNumber", typ: tString, readOnly: true},
		field{name: "AccountId", typ: tRef, required: true, refTo: "Account"},
		field{name: "EffectiveDate", typ: tDate, required: true},
		field{name: "Status", typ: tString, required: true, picklist: []string{"Draft", "Activated"}},
		field{name: "TotalAmount", typ: tNumber, readOnly: true},
		field{name: "Description", typ: tString, maxLen: 32000},
	)},
	"group": {name: "Group", prefix: "00G", fields: append(slices.Clone(common),
		field{name: "Name", typ: tString, required: true, maxLen: 40},
		field{name: "DeveloperName", typ: tString, maxLen: 80},
		field{name: "Type", typ: tString, picklist: []string{"Regular", "Queue"}},
	)},
	"note": {name: "Note", prefix: "002", fields: append(slices.Clone(common),
		field{name: "ParentId", typ: tRef, required: true},
		field{name: "Title", typ: tString, required: true, maxLen: 80},
		field{name: "Body", typ: tString, maxLen: 32000},
		field{name: "IsPrivate", typ: tBool},
	)},
}

// table holds the records of one object, in insertion order.
type table struct {
	obj   *object
	order []string
	rows  map[string]map[string]any
	seq   int
}

const sfTime = "2006-01-02T15:04:05.000+0000"

func (s *Server) table(obj string) (*table, bool) {
	o, ok := schema[strings.ToLower(obj)]
	if !ok {
		return nil, false
	}
	t, ok := s.db[o.name]
	if !ok {
		t = &table{obj: o, rows: map[string]map[string]any{}}
		s.db[o.name] = t
	}
	return t, true
}

// lookup finds a record by its 18- or 15-character ID.
func (t *table) lookup(id string) (map[string]any, bool) {
	if len(id) == 15 {
		for _, full := range t.order {
			if full[:15] == id {
				return t.rows[full], true
			}
		}
		return nil, false
	}
	r, ok := t.rows[id]
	return r, ok
}

// find looks a record up in any table (for references to any object).
func (s *Server) find(id string) (string, map[string]any, bool) {
	if len(id) != 15 && len(id) != 18 {
		return "", nil, false
	}
	for _, o := range schema {
		if strings.HasPrefix(id, o.prefix) {
			t, _ := s.table(o.name)
			r, ok := t.lookup(id)
			return o.name, r, ok
		}
	}
	return "", nil, false
}

// Add inserts a record into object (e.g. "Account") without validation and returns its ID; the
// caller's fields are copied (Id, CreatedDate, LastModifiedDate and computed fields are set).
// It panics on an unknown object. For test set-up.
func (s *Server) Add(obj string, fields map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.table(obj)
	if !ok {
		panic("fakesalesforce: unknown object " + obj)
	}
	return s.insert(t, fields)
}

func (s *Server) insert(t *table, fields map[string]any) string {
	t.seq++
	id := fmt.Sprintf("%sD%011dAAA", t.obj.prefix, t.seq)
	now := s.now().UTC().Format(sfTime)
	r := map[string]any{}
	for _, f := range t.obj.fields {
		r[f.name] = nil
	}
	for k, v := range fields {
		if f, ok := t.obj.field(k); ok {
			r[f.name] = v
		}
	}
	r["Id"], r["CreatedDate"], r["LastModifiedDate"] = id, now, now
	if t.obj.name == "Case" {
		r["CaseNumber"] = fmt.Sprintf("%08d", t.seq)
		if r["Status"] == nil {
			r["Status"] = "New"
		}
	}
	if t.obj.name == "Lead" && r["Status"] == nil {
		r["Status"] = "Open - Not Contacted"
	}
	if t.obj.name == "Order" {
		r["OrderNumber"] = fmt.Sprintf("%08d", t.seq)
		if r["TotalAmount"] == nil {
			r["TotalAmount"] = 0.0
		}
	}
	if t.obj.name == "Note" && r["IsPrivate"] == nil {
		r["IsPrivate"] = false
	}
	compute(t.obj.name, r)
	t.rows[id] = r
	t.order = append(t.order, id)
	return id
}

// compute sets the formula fields of a record.
func compute(obj string, r map[string]any) {
	switch obj {
	case "Contact", "Lead":
		first, _ := r["FirstName"].(string)
		last, _ := r["LastName"].(string)
		r["Name"] = strings.TrimSpace(first + " " + last)
	case "Opportunity":
		stage, _ := r["StageName"].(string)
		r["IsClosed"] = stage == "Closed Won" || stage == "Closed Lost"
		r["IsWon"] = stage == "Closed Won"
	case "Case":
		r["IsClosed"] = r["Status"] == "Closed"
	}
}

// Record returns a copy of a record's fields, for tests.
func (s *Server) Record(obj, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.table(obj)
	if !ok {
		return nil, false
	}
	r, ok := t.lookup(id)
	if !ok {
		return nil, false
	}
	out := make(map[string]any, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out, true
}

// Count returns the number of records of obj.
func (s *Server) Count(obj string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.table(obj)
	if !ok {
		return 0
	}
	return len(t.order)
}

func (s *Server) seed() {
	at := time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC)
	now := s.now
	s.now = func() time.Time { return at }
	add := func(obj string, f map[string]any) { t, _ := s.table(obj); s.insert(t, f) }
	add("Account", map[string]any{"Name": "Acme Corporation", "Industry": "Manufacturing", "AnnualRevenue": 12000000.0, "NumberOfEmployees": 250.0, "BillingCity": "Phoenix", "Website": "https://acme.example"})
	add("Account", map[string]any{"Name": "Globex", "Industry": "Energy", "AnnualRevenue": 98000000.0, "NumberOfEmployees": 1200.0, "BillingCity": "Cypress Creek"})
	add("Account", map[string]any{"Name": "Initech", "Industry": "Technology", "AnnualRevenue": 4500000.0, "NumberOfEmployees": 80.0, "BillingCity": "Austin"})
	add("Contact", map[string]any{"FirstName": "Wile E.", "LastName": "Coyote", "Email": "wile@acme.example", "Title": "Head of Procurement", "AccountId": Acme})
	add("Contact", map[string]any{"FirstName": "Hank", "LastName": "Scorpio", "Email": "hank@globex.example", "Title": "CEO", "AccountId": Globex})
	add("Opportunity", map[string]any{"Name": "Acme Anvils", "StageName": "Prospecting", "CloseDate": "2024-06-30", "Amount": 50000.0, "AccountId": Acme})
	add("Opportunity", map[string]any{"Name": "Globex Doomsday Device", "StageName": "Negotiation/Review", "CloseDate": "2024-03-31", "Amount": 1000000.0, "AccountId": Globex})
	add("Opportunity", map[string]any{"Name": "Initech TPS Reports", "StageName": "Closed Won", "CloseDate": "2024-01-10", "Amount": 20000.0, "AccountId": Initech})
	add("Opportunity", map[string]any{"Name": "Acme Rockets", "StageName": "Closed Lost", "CloseDate": "2023-12-01", "Amount": 75000.0, "AccountId": Acme})
	add("Order", map[string]any{"AccountId": Acme, "EffectiveDate": "2024-01-15", "Status": "Draft", "Description": "Anvils, 40"})
	add("Group", map[string]any{"Name": "Sales Team", "DeveloperName": "Sales_Team", "Type": "Regular"})
	add("Case", map[string]any{"Subject": "Anvil fell on the customer", "Status": "Working", "Priority": "High", "Origin": "Phone", "AccountId": Acme, "ContactId": Coyote})
	s.now = now
}

var idRE = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)

func notFound() *apiError {
	return fail(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
}

func attributes(version, obj, id string) map[string]any {
	return map[string]any{"type": obj, "url": "/services/data/" + version + "/sobjects/" + obj + "/" + id}
}

// sobject serves /sobjects/OBJ and /sobjects/OBJ/ID.
func (s *Server) sobject(r *http.Request, version, obj, id string, body []byte) (int, any, *apiError) {
	t, ok := s.table(obj)
	if !ok {
		return 0, nil, notFound()
	}
	if id == "" {
		if r.Method != http.MethodPost {
			return 0, nil, fail(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "HTTP Method '"+r.Method+"' not allowed. Allowed are GET,HEAD,POST")
		}
		return s.create(t, body)
	}
	rec, found := t.lookup(id)
	if !idRE.MatchString(id) || !found {
		return 0, nil, notFound()
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fields := []string{}
		if q := r.URL.Query().Get("fields"); q != "" {
			for _, name := range strings.Split(q, ",") {
				f, ok := t.obj.field(strings.TrimSpace(name))
				if !ok {
					return 0, nil, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", strings.TrimSpace(name), t.obj.name))
				}
				fields = append(fields, f.name)
			}
		} else {
			for _, f := range t.obj.fields {
				fields = append(fields, f.name)
			}
		}
		out := map[string]any{"attributes": attributes(version, t.obj.name, rec["Id"].(string))}
		for _, f := range fields {
			out[f] = rec[f]
		}
		if _, ok := out["Id"]; !ok {
			out["Id"] = rec["Id"]
		}
		return http.StatusOK, out, nil
	case http.MethodPatch:
		if v := r.Header.Get("If-Unmodified-Since"); v != "" {
			since, err := http.ParseTime(v)
			if err != nil {
				return 0, nil, fail(http.StatusBadRequest, "INVALID_HEADER_TYPE", "If-Unmodified-Since is not an HTTP date")
			}
			mod, _ := time.Parse(sfTime, rec["LastModifiedDate"].(string))
			if mod.Truncate(time.Second).After(since) {
				return 0, nil, fail(http.StatusPreconditionFailed, "PRECONDITION_FAILED",
					"The requested resource has been modified since the If-Unmodified-Since date")
			}
		}
		return s.update(t, rec, body)
	default:
		return 0, nil, fail(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "HTTP Method '"+r.Method+"' not allowed. Allowed are HEAD,GET,PATCH")
	}
}

func decodeFields(body []byte) (map[string]json.RawMessage, *apiError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fail(http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not a JSON object of field values")
	}
	return m, nil
}

// convert validates a field value from a request body against the field.
func (s *Server) convert(obj *object, name string, raw json.RawMessage) (string, any, *apiError) {
	f, ok := obj.field(name)
	if !ok {
		return "", nil, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", name, obj.name))
	}
	if f.readOnly {
		return "", nil, fail(http.StatusBadRequest, "INVALID_FIELD_FOR_INSERT_UPDATE",
			fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", f.name), f.name)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", nil, fail(http.StatusBadRequest, "JSON_PARSER_ERROR", "Malformed JSON")
	}
	if v == nil {
		if f.required {
			return "", nil, fail(http.StatusBadRequest, "REQUIRED_FIELD_MISSING", fmt.Sprintf("Required fields are missing: [%s]", f.name), f.name)
		}
		return f.name, nil, nil
	}
	mismatch := fail(http.StatusBadRequest, "JSON_PARSER_ERROR",
		fmt.Sprintf("Cannot deserialize instance of %s from %s value %s", f.typ, jsonKind(v), truncate(string(raw), 40)))
	switch f.typ {
	case tNumber:
		if _, ok := v.(float64); !ok {
			return "", nil, mismatch
		}
	case tBool:
		if _, ok := v.(bool); !ok {
			return "", nil, mismatch
		}
	case tDate, tDateTime, tString, tRef, tID:
		str, ok := v.(string)
		if !ok {
			return "", nil, mismatch
		}
		switch f.typ {
		case tDate:
			if _, err := time.Parse(time.DateOnly, str); err != nil {
				return "", nil, fail(http.StatusBadRequest, "JSON_PARSER_ERROR", fmt.Sprintf("Cannot deserialize instance of date from VALUE_STRING value %s", truncate(str, 40)), f.name)
			}
		case tDateTime:
			t, err := time.Parse(time.RFC3339, str)
			if err != nil {
				return "", nil, fail(http.StatusBadRequest, "JSON_PARSER_ERROR", fmt.Sprintf("Cannot deserialize instance of datetime from VALUE_STRING value %s", truncate(str, 40)), f.name)
			}
			v = t.UTC().Format(sfTime)
		case tRef:
			refObj, _, ok := s.find(str)
			if !ok || (f.refTo != "" && refObj != f.refTo) {
				return "", nil, fail(http.StatusBadRequest, "INVALID_CROSS_REFERENCE_KEY", fmt.Sprintf("%s: id value of incorrect type: %s", f.name, truncate(str, 40)), f.name)
			}
		case tString:
			maxLen := f.maxLen
			if maxLen == 0 {
				maxLen = 255
			}
			if len([]rune(str)) > maxLen {
				return "", nil, fail(http.StatusBadRequest, "STRING_TOO_LONG", fmt.Sprintf("%s: data value too large: %s (max length=%d)", f.name, truncate(str, 40), maxLen), f.name)
			}
			if f.picklist != nil && !slices.Contains(f.picklist, str) {
				return "", nil, fail(http.StatusBadRequest, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", fmt.Sprintf("%s: bad value for restricted picklist field: %s", f.name, truncate(str, 80)), f.name)
			}
		}
	}
	return f.name, v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "VALUE_STRING"
	case float64:
		return "VALUE_NUMBER"
	case bool:
		return "VALUE_BOOLEAN"
	case []any:
		return "START_ARRAY"
	default:
		return "START_OBJECT"
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CreateResult is the answer to a successful POST /sobjects/OBJ.
type CreateResult struct {
	ID      string    `json:"id"`
	Success bool      `json:"success"`
	Errors  []sfError `json:"errors"`
}

func (s *Server) create(t *table, body []byte) (int, any, *apiError) {
	raw, e := decodeFields(body)
	if e != nil {
		return 0, nil, e
	}
	vals := map[string]any{}
	for _, k := range sortedKeys(raw) {
		name, v, e := s.convert(t.obj, k, raw[k])
		if e != nil {
			return 0, nil, e
		}
		vals[name] = v
	}
	var missing []string
	for _, f := range t.obj.fields {
		if f.required && vals[f.name] == nil {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return 0, nil, fail(http.StatusBadRequest, "REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...)
	}
	if len(t.order) >= MaxRecords {
		return 0, nil, fail(http.StatusBadRequest, "STORAGE_LIMIT_EXCEEDED", "storage limit exceeded")
	}
	id := s.insert(t, vals)
	s.writes++
	return http.StatusCreated, CreateResult{ID: id, Success: true, Errors: []sfError{}}, nil
}

func (s *Server) update(t *table, rec map[string]any, body []byte) (int, any, *apiError) {
	raw, e := decodeFields(body)
	if e != nil {
		return 0, nil, e
	}
	vals := map[string]any{}
	for _, k := range sortedKeys(raw) {
		name, v, e := s.convert(t.obj, k, raw[k])
		if e != nil {
			return 0, nil, e
		}
		vals[name] = v
	}
	for k, v := range vals {
		rec[k] = v
	}
	rec["LastModifiedDate"] = s.now().UTC().Format(sfTime)
	compute(t.obj.name, rec)
	s.writes++
	return http.StatusNoContent, nil, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
