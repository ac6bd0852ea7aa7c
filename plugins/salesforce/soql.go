package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/pdk"
)

// soql_query never builds SOQL from model text. The agent sends a structured query (object,
// fields, conditions with an operator from a fixed list, order, limit); identifiers must match
// a strict pattern and the object must be on the allowed list; every value is rendered as a SOQL
// literal of its declared type, strings with SOQL's escapes. Text from the agent can therefore
// only ever end up inside a quoted, escaped literal: `' OR Name != '` is a name to look for, not
// a condition. See README.md ("Why a structured query").

const (
	maxFields     = 50
	maxConditions = 20
	maxInValues   = 100
	maxOrderBy    = 5
	maxValueLen   = 4000
	// maxRows is the row cap of one soql_query call (and its maximum limit).
	maxRows      = 2000
	defaultLimit = 200
	// maxPages bounds the nextRecordsUrl pages one call follows.
	maxPages = 20
)

var (
	// identSegRE is one segment of a field path or an object name: a letter, then letters,
	// digits and underscores (custom names end in __c, relationships in __r).
	identSegRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	dateRE     = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	numberRE   = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`)
	// dateLiteralRE are SOQL's date literals, exactly as Salesforce lists them ("Date Formats
	// and Date Literals", SOQL and SOSL Reference): TODAY, THIS_MONTH, LAST_N_DAYS:n,
	// N_DAYS_AGO:n, NEXT_N_FISCAL_QUARTERS:n and the rest. Forms that merely look alike
	// (N_N_DAYS:n, LAST_N_DAYS_AGO:n, THIS_90_DAYS) are not literals.
	dateLiteralRE = regexp.MustCompile(`^(YESTERDAY|TODAY|TOMORROW` +
		`|(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)` +
		`|(LAST|NEXT)_90_DAYS` +
		`|(LAST|NEXT)_N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS):[0-9]{1,4}` +
		`|N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)_AGO:[0-9]{1,4})$`)
)

// soqlReserved are the words Salesforce reserves in SOQL and SOSL ("Reserved Characters" and
// "SOQL and SOSL Reserved Words", SOQL and SOSL Reference). A field name may not be one, so a
// field can never change the shape of the query; every other keyword is a plain identifier
// there (ORDER is not reserved: Order is a standard object and OrderItem.Order a relationship).
var soqlReserved = map[string]bool{
	"AND": true, "ASC": true, "DESC": true, "EXCLUDES": true, "FIRST": true, "FROM": true, "GROUP": true,
	"HAVING": true, "IN": true, "INCLUDES": true, "LAST": true, "LIKE": true, "LIMIT": true, "NOT": true,
	"NULL": true, "NULLS": true, "OR": true, "SELECT": true, "WHERE": true, "WITH": true,
}

// reservedObjects are the standard objects whose names are reserved words; after FROM, and
// as a relationship in a field path (GroupMember.Group.Name), Salesforce reads them as names.
var reservedObjects = map[string]bool{"GROUP": true}

// validIdent reports whether s is a plain identifier (a field API name).
func validIdent(s string) bool {
	return identSegRE.MatchString(s) && !soqlReserved[strings.ToUpper(s)]
}

// validObject reports whether s may name an sObject: an identifier, or a standard object whose
// name is a reserved word (Group).
func validObject(s string) bool {
	return validIdent(s) || identSegRE.MatchString(s) && reservedObjects[strings.ToUpper(s)]
}

// validFieldPath reports whether s is a field or a relationship path of at most 5 levels
// (Account.Owner.Name).
func validFieldPath(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 5 {
		return false
	}
	for i, p := range parts {
		relationship := i < len(parts)-1
		if !validIdent(p) && !(relationship && validObject(p)) {
			return false
		}
	}
	return true
}

// condition is one WHERE condition of a structured query.
type condition struct {
	Field string          `json:"field"`
	Op    string          `json:"op"`
	Value json.RawMessage `json:"value"`
	// Type says how a string value is written: string (default), date (2024-01-31), datetime
	// (RFC 3339) or date_literal (TODAY, LAST_N_DAYS:30, …).
	Type string `json:"type,omitempty"`
}

type orderItem struct {
	Field     string `json:"field"`
	Direction string `json:"direction,omitempty"` // ASC (default) or DESC
	Nulls     string `json:"nulls,omitempty"`     // FIRST or LAST
}

type queryArgs struct {
	Object  string      `json:"object"`
	Fields  []string    `json:"fields"`
	Where   []condition `json:"where,omitempty"`
	OrderBy []orderItem `json:"order_by,omitempty"`
	Limit   int         `json:"limit,omitempty"`
}

// operators maps the operators a condition may use to their SOQL spelling.
var operators = map[string]string{
	"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
	"LIKE": "LIKE", "IN": "IN", "NOT IN": "NOT IN",
}

func badQuery(format string, args ...any) error {
	return pdk.Correctable(pdk.CodeInvalidArguments, format, args...)
}

// buildSOQL renders a structured query as SOQL. object is the canonical allowed object name and
// limit the number of rows to ask for.
func buildSOQL(q queryArgs, object string, limit int) (string, error) {
	if len(q.Fields) == 0 || len(q.Fields) > maxFields {
		return "", badQuery("give between 1 and %d fields to select, e.g. [\"Id\", \"Name\"]", maxFields)
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	seen := map[string]bool{}
	for i, f := range q.Fields {
		if !validFieldPath(f) {
			return "", badField(f)
		}
		if seen[strings.ToLower(f)] {
			return "", badQuery("field %s is selected twice; list each field once", f)
		}
		seen[strings.ToLower(f)] = true
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f)
	}
	b.WriteString(" FROM ")
	b.WriteString(object)
	if len(q.Where) > maxConditions {
		return "", badQuery("at most %d conditions are allowed; narrow the query differently", maxConditions)
	}
	for i, c := range q.Where {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		s, err := renderCondition(c)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	if len(q.OrderBy) > maxOrderBy {
		return "", badQuery("order by at most %d fields", maxOrderBy)
	}
	for i, o := range q.OrderBy {
		if !validFieldPath(o.Field) {
			return "", badField(o.Field)
		}
		if i == 0 {
			b.WriteString(" ORDER BY ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(o.Field)
		switch strings.ToUpper(o.Direction) {
		case "", "ASC":
			b.WriteString(" ASC")
		case "DESC":
			b.WriteString(" DESC")
		default:
			return "", badQuery("direction must be ASC or DESC, not %q", truncate(o.Direction, 20))
		}
		switch strings.ToUpper(o.Nulls) {
		case "":
		case "FIRST":
			b.WriteString(" NULLS FIRST")
		case "LAST":
			b.WriteString(" NULLS LAST")
		default:
			return "", badQuery("nulls must be FIRST or LAST, not %q", truncate(o.Nulls, 20))
		}
	}
	b.WriteString(" LIMIT ")
	b.WriteString(strconv.Itoa(limit))
	return b.String(), nil
}

func badField(f string) error {
	return badQuery("%q is not a Salesforce field name: use API names such as Name, Industry, Custom_Field__c or Account.Name (letters, digits and underscores, dots between relationship levels)", truncate(f, 80))
}

// renderCondition renders one condition; the value only ever becomes a typed literal.
func renderCondition(c condition) (string, error) {
	if !validFieldPath(c.Field) {
		return "", badField(c.Field)
	}
	op, ok := operators[strings.ToUpper(strings.Join(strings.Fields(c.Op), " "))]
	if !ok {
		return "", badQuery("operator %q is not supported: use one of =, !=, <, <=, >, >=, LIKE, IN, NOT IN", truncate(c.Op, 20))
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(c.Value))
	dec.UseNumber()
	if len(c.Value) == 0 || dec.Decode(&v) != nil {
		return "", badQuery("the condition on %s has no value", c.Field)
	}
	if op == "IN" || op == "NOT IN" {
		list, ok := v.([]any)
		if !ok || len(list) == 0 || len(list) > maxInValues {
			return "", badQuery("%s on %s needs a list of 1 to %d values", op, c.Field, maxInValues)
		}
		parts := make([]string, len(list))
		for i, item := range list {
			if item == nil {
				return "", badQuery("%s on %s: the list may not contain null; use a separate = null or != null condition", op, c.Field)
			}
			lit, err := literal(c.Field, item, c.Type, op)
			if err != nil {
				return "", err
			}
			parts[i] = lit
		}
		return c.Field + " " + op + " (" + strings.Join(parts, ", ") + ")", nil
	}
	if _, isList := v.([]any); isList {
		return "", badQuery("operator %s on %s takes one value; use IN for a list", op, c.Field)
	}
	if v == nil && op != "=" && op != "!=" {
		return "", badQuery("null can only be compared with = or != (on %s)", c.Field)
	}
	if _, isString := v.(string); op == "LIKE" && (!isString || (c.Type != "" && c.Type != "string")) {
		return "", badQuery("LIKE on %s needs a text value such as \"Acme%%\" (%% matches any text, _ one character)", c.Field)
	}
	lit, err := literal(c.Field, v, c.Type, op)
	if err != nil {
		return "", err
	}
	return c.Field + " " + op + " " + lit, nil
}

// literal renders one value as a SOQL literal of type typ.
func literal(field string, v any, typ, op string) (string, error) {
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case bool:
		if typ != "" {
			return "", badQuery("the value of %s is a boolean: leave out type", field)
		}
		if v {
			return "TRUE", nil
		}
		return "FALSE", nil
	case json.Number:
		if typ != "" {
			return "", badQuery("the value of %s is a number: leave out type", field)
		}
		if !numberRE.MatchString(v.String()) {
			return "", badQuery("the value of %s must be a plain decimal number such as 1500 or 99.5 (no exponent)", field)
		}
		return v.String(), nil
	case string:
		switch typ {
		case "", "string":
			return quote(field, v)
		case "date":
			if !dateRE.MatchString(v) {
				return "", badQuery("the value of %s must be a date such as 2024-01-31 (type date)", field)
			}
			if _, err := time.Parse(time.DateOnly, v); err != nil {
				return "", badQuery("the value of %s, %s, is not a valid date", field, v)
			}
			return v, nil
		case "datetime":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return "", badQuery("the value of %s must be a date and time such as 2024-01-31T09:00:00Z (type datetime)", field)
			}
			return t.UTC().Format("2006-01-02T15:04:05Z"), nil
		case "date_literal":
			u := strings.ToUpper(v)
			if !dateLiteralRE.MatchString(u) {
				return "", badQuery("%q is not a SOQL date literal: use one such as TODAY, YESTERDAY, THIS_MONTH, LAST_N_DAYS:30 or NEXT_N_WEEKS:2", truncate(v, 40))
			}
			return u, nil
		default:
			return "", badQuery("type %q is not supported: use string, date, datetime or date_literal", truncate(typ, 20))
		}
	default:
		return "", badQuery("the value of %s must be a string, number, boolean or null", field)
	}
}

// quote renders s as a SOQL string literal: quotes, backslashes and the control characters SOQL
// knows are escaped; any other control character is refused.
func quote(field, s string) (string, error) {
	if len(s) > maxValueLen {
		return "", badQuery("the value of %s is longer than %d characters", field, maxValueLen)
	}
	if !utf8.ValidString(s) {
		return "", badQuery("the value of %s is not valid UTF-8", field)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x7f {
				return "", badQuery("the value of %s contains a control character (U+%04X) that SOQL cannot hold", field, r)
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}
