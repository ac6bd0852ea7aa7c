package fakesalesforce

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file is a small SOQL engine: enough of the grammar for what the connector emits, with
// SOQL's string escapes, so that a value that breaks out of its quotes would change the query
// here just as it would in Salesforce.
//
//	SELECT field[, field…] FROM object
//	  [WHERE cond {AND|OR cond}]      cond: field op literal | field [NOT] IN (literal, …)
//	                                        | NOT cond | (cond …)
//	  [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, …]]
//	  [LIMIT n]
//
// Literals: 'strings' (escapes \' \" \\ \n \r \t \b \f, their upper-case forms, \uXXXX, and
// \% \_ in LIKE), numbers, TRUE, FALSE, NULL, dates (2024-01-31), datetimes
// (2024-01-31T10:00:00Z) and every date literal Salesforce documents (TODAY, THIS_MONTH,
// LAST_N_DAYS:n, N_QUARTERS_AGO:n, NEXT_FISCAL_YEAR, …; the fiscal year is the calendar year, as
// in an org that has not changed it). A field is Name or a path through reference fields of up to
// five relationships (Account.Name, Contact.Account.Name, Parent.Name for a polymorphic one).

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkString
	tkNumber
	tkDate
	tkDateTime
	tkOp
	tkPunct
)

type tok struct {
	kind tokKind
	text string // identifiers and keywords as written; strings unescaped
	pos  int    // column, from 1
}

func malformed(q string, t tok) *apiError {
	what := t.text
	if t.kind == tkEOF {
		what = "<EOF>"
	} else if t.kind == tkString {
		what = "'" + t.text + "'"
	}
	return fail(http.StatusBadRequest, "MALFORMED_QUERY",
		fmt.Sprintf("\n%s\n%s^\nERROR at Row:1:Column:%d\nunexpected token: %s", truncate(q, 200), strings.Repeat(" ", min(max(t.pos-1, 0), 200)), t.pos, truncate(what, 80)))
}

var (
	dateRE     = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}`)
	dateTimeRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?(Z|[+-][0-9]{2}:?[0-9]{2})`)
	numberRE   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?`)
	dateLitRE  = regexp.MustCompile(`^[A-Za-z_]+:[0-9]+`)
)

func lex(q string) ([]tok, *apiError) {
	var toks []tok
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(q) {
				ch := q[i]
				if ch == '\\' {
					if i+1 >= len(q) {
						break
					}
					esc := q[i+1]
					switch esc {
					case '\'', '"', '\\':
						b.WriteByte(esc)
					case 'n', 'N':
						b.WriteByte('\n')
					case 'r', 'R':
						b.WriteByte('\r')
					case 't', 'T':
						b.WriteByte('\t')
					case 'b', 'B':
						b.WriteByte('\b')
					case 'f', 'F':
						b.WriteByte('\f')
					case 'u':
						r, err := strconv.ParseUint(q[i+2:min(i+6, len(q))], 16, 16)
						if err != nil || i+6 > len(q) || strings.ContainsAny(q[i+2:i+6], "+-") {
							return nil, fail(http.StatusBadRequest, "MALFORMED_QUERY",
								fmt.Sprintf("Invalid string literal '%s'. Illegal character sequence '\\u' in string literal.", truncate(q[start:], 40)))
						}
						b.WriteRune(rune(r))
						i += 6
						continue
					case '%', '_': // kept escaped: only LIKE gives them meaning
						b.WriteByte('\\')
						b.WriteByte(esc)
					default:
						return nil, fail(http.StatusBadRequest, "MALFORMED_QUERY",
							fmt.Sprintf("Invalid string literal '%s'. Illegal character sequence '\\%c' in string literal.", truncate(q[start:], 40), esc))
					}
					i += 2
					continue
				}
				if ch == '\'' {
					closed = true
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, malformed(q, tok{kind: tkEOF, pos: len(q) + 1})
			}
			toks = append(toks, tok{kind: tkString, text: b.String(), pos: start + 1})
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, tok{kind: tkPunct, text: string(c), pos: i + 1})
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			op := string(c)
			if i+1 < len(q) && (q[i+1] == '=' || (c == '<' && q[i+1] == '>')) {
				op += string(q[i+1])
			}
			if op == "!" {
				return nil, malformed(q, tok{kind: tkOp, text: op, pos: i + 1})
			}
			toks = append(toks, tok{kind: tkOp, text: op, pos: i + 1})
			i += len(op)
		case dateTimeRE.MatchString(q[i:]):
			m := dateTimeRE.FindString(q[i:])
			toks = append(toks, tok{kind: tkDateTime, text: m, pos: i + 1})
			i += len(m)
		case dateRE.MatchString(q[i:]):
			m := dateRE.FindString(q[i:])
			toks = append(toks, tok{kind: tkDate, text: m, pos: i + 1})
			i += len(m)
		case numberRE.MatchString(q[i:]):
			m := numberRE.FindString(q[i:])
			toks = append(toks, tok{kind: tkNumber, text: m, pos: i + 1})
			i += len(m)
		case c < 0x80 && (unicode.IsLetter(rune(c)) || c == '_'):
			if m := dateLitRE.FindString(q[i:]); m != "" {
				toks = append(toks, tok{kind: tkIdent, text: m, pos: i + 1})
				i += len(m)
				continue
			}
			start := i
			for i < len(q) && q[i] < 0x80 && (unicode.IsLetter(rune(q[i])) || unicode.IsDigit(rune(q[i])) || q[i] == '_' || q[i] == '.') {
				i++
			}
			toks = append(toks, tok{kind: tkIdent, text: q[start:i], pos: start + 1})
		default:
			return nil, malformed(q, tok{kind: tkPunct, text: string(c), pos: i + 1})
		}
	}
	return append(toks, tok{kind: tkEOF, pos: len(q) + 1}), nil
}

// query is a parsed SELECT.
type query struct {
	fields []string
	object *object
	where  expr
	order  []orderItem
	limit  int // -1: none
}

type orderItem struct {
	field      string
	desc       bool
	nullsFirst bool
}

// expr is a WHERE condition.
type expr interface {
	eval(s *Server, rec map[string]any) bool
}

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ e expr }

func (e andExpr) eval(s *Server, r map[string]any) bool { return e.l.eval(s, r) && e.r.eval(s, r) }
func (e orExpr) eval(s *Server, r map[string]any) bool  { return e.l.eval(s, r) || e.r.eval(s, r) }
func (e notExpr) eval(s *Server, r map[string]any) bool { return !e.e.eval(s, r) }

type literal struct {
	kind tokKind // tkString, tkNumber, tkDate, tkDateTime, tkIdent (TRUE/FALSE/NULL/date literal)
	text string
}

type cmpExpr struct {
	obj   *object // the queried object
	field string
	typ   fieldType
	op    string // = != < <= > >= LIKE IN NOTIN
	vals  []literal
	now   time.Time
}

type parser struct {
	q    string
	toks []tok
	i    int
	s    *Server
	obj  *object
}

func (p *parser) peek() tok { return p.toks[p.i] }
func (p *parser) next() tok { t := p.toks[p.i]; p.i = min(p.i+1, len(p.toks)-1); return t }

func (p *parser) keyword(kw string) bool {
	t := p.peek()
	if t.kind == tkIdent && strings.EqualFold(t.text, kw) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectKeyword(kw string) *apiError {
	if !p.keyword(kw) {
		return malformed(p.q, p.peek())
	}
	return nil
}

// reserved are the words Salesforce reserves in SOQL (SOQL and SOSL Reference, "Reserved
// Characters" and "SOQL and SOSL Reserved Words"): no field may be named by one.
var reserved = map[string]bool{"AND": true, "ASC": true, "DESC": true, "EXCLUDES": true, "FIRST": true,
	"FROM": true, "GROUP": true, "HAVING": true, "IN": true, "INCLUDES": true, "LAST": true, "LIKE": true,
	"LIMIT": true, "NOT": true, "NULL": true, "NULLS": true, "OR": true, "SELECT": true, "WHERE": true, "WITH": true}

// maxRelationships is how many relationships a field path may follow (Salesforce: five levels).
const maxRelationships = 5

// resolveField checks a field path against the object and returns its canonical form and type.
func (p *parser) resolveField(t tok) (string, fieldType, *apiError) {
	segs := strings.Split(t.text, ".")
	if t.kind != tkIdent || reserved[strings.ToUpper(segs[len(segs)-1])] {
		return "", 0, malformed(p.q, t)
	}
	if len(segs) > maxRelationships+1 {
		return "", 0, fail(http.StatusBadRequest, "MALFORMED_QUERY", fmt.Sprintf("field path %s follows more than %d relationships", t.text, maxRelationships))
	}
	obj := p.obj
	var canon []string
	for _, rel := range segs[:len(segs)-1] {
		f, ok := obj.relationship(rel)
		if !ok {
			return "", 0, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("\n%s\n^\nERROR at Row:1:Column:%d\nDidn't understand relationship '%s' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", truncate(p.q, 200), t.pos, rel))
		}
		canon = append(canon, f.relName())
		obj = f.target()
	}
	name := segs[len(segs)-1]
	f, ok := obj.field(name)
	if !ok || name == "" {
		return "", 0, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf(
			"\n%s\n^\nERROR at Row:1:Column:%d\nNo such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
			truncate(p.q, 200), t.pos, name, obj.name))
	}
	return strings.Join(append(canon, f.name), "."), f.typ, nil
}

func (s *Server) parse(q string) (*query, *apiError) {
	toks, e := lex(q)
	if e != nil {
		return nil, e
	}
	p := &parser{q: q, toks: toks, s: s}
	if e := p.expectKeyword("SELECT"); e != nil {
		return nil, e
	}
	var raw []tok
	for {
		t := p.next()
		if t.kind != tkIdent || reserved[strings.ToUpper(t.text)] {
			return nil, malformed(q, t)
		}
		raw = append(raw, t)
		if p.peek().kind == tkPunct && p.peek().text == "," {
			p.next()
			continue
		}
		break
	}
	if e := p.expectKeyword("FROM"); e != nil {
		return nil, e
	}
	ot := p.next()
	if ot.kind != tkIdent {
		return nil, malformed(q, ot)
	}
	obj, ok := schema[strings.ToLower(ot.text)]
	if !ok || strings.Contains(ot.text, ".") {
		return nil, fail(http.StatusBadRequest, "INVALID_TYPE", fmt.Sprintf(
			"\n%s\n^\nERROR at Row:1:Column:%d\nsObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
			truncate(q, 200), ot.pos, ot.text))
	}
	p.obj = obj
	qq := &query{object: obj, limit: -1}
	seen := map[string]bool{}
	for _, t := range raw {
		name, _, e := p.resolveField(t)
		if e != nil {
			return nil, e
		}
		if seen[strings.ToLower(name)] {
			return nil, fail(http.StatusBadRequest, "MALFORMED_QUERY", "duplicate field selected: "+name)
		}
		seen[strings.ToLower(name)] = true
		qq.fields = append(qq.fields, name)
	}
	if p.keyword("WHERE") {
		w, e := p.orExpr()
		if e != nil {
			return nil, e
		}
		qq.where = w
	}
	if p.keyword("ORDER") {
		if e := p.expectKeyword("BY"); e != nil {
			return nil, e
		}
		for {
			name, _, e := p.resolveField(p.next())
			if e != nil {
				return nil, e
			}
			item := orderItem{field: name, nullsFirst: true}
			if p.keyword("DESC") {
				item.desc, item.nullsFirst = true, false
			} else {
				p.keyword("ASC")
			}
			if p.keyword("NULLS") {
				switch {
				case p.keyword("FIRST"):
					item.nullsFirst = true
				case p.keyword("LAST"):
					item.nullsFirst = false
				default:
					return nil, malformed(q, p.peek())
				}
			}
			qq.order = append(qq.order, item)
			if p.peek().kind == tkPunct && p.peek().text == "," {
				p.next()
				continue
			}
			break
		}
	}
	if p.keyword("LIMIT") {
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tkNumber || err != nil || n < 0 {
			return nil, malformed(q, t)
		}
		qq.limit = n
	}
	if t := p.peek(); t.kind != tkEOF {
		return nil, malformed(q, t)
	}
	return qq, nil
}

func (p *parser) orExpr() (expr, *apiError) {
	l, e := p.andExpr()
	if e != nil {
		return nil, e
	}
	for p.keyword("OR") {
		r, e := p.andExpr()
		if e != nil {
			return nil, e
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) andExpr() (expr, *apiError) {
	l, e := p.cond()
	if e != nil {
		return nil, e
	}
	for p.keyword("AND") {
		r, e := p.cond()
		if e != nil {
			return nil, e
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) cond() (expr, *apiError) {
	if p.keyword("NOT") {
		c, e := p.cond()
		if e != nil {
			return nil, e
		}
		return notExpr{c}, nil
	}
	if t := p.peek(); t.kind == tkPunct && t.text == "(" {
		p.next()
		c, e := p.orExpr()
		if e != nil {
			return nil, e
		}
		if t := p.next(); t.kind != tkPunct || t.text != ")" {
			return nil, malformed(p.q, t)
		}
		return c, nil
	}
	ft := p.next()
	name, typ, e := p.resolveField(ft)
	if e != nil {
		return nil, e
	}
	c := cmpExpr{obj: p.obj, field: name, typ: typ, now: p.s.now()}
	switch t := p.next(); {
	case t.kind == tkOp:
		c.op = t.text
		if c.op == "<>" {
			c.op = "!="
		}
	case t.kind == tkIdent && strings.EqualFold(t.text, "LIKE"):
		c.op = "LIKE"
	case t.kind == tkIdent && strings.EqualFold(t.text, "IN"):
		c.op = "IN"
	case t.kind == tkIdent && strings.EqualFold(t.text, "NOT") && p.keyword("IN"):
		c.op = "NOTIN"
	default:
		return nil, malformed(p.q, t)
	}
	if c.op == "IN" || c.op == "NOTIN" {
		if t := p.next(); t.kind != tkPunct || t.text != "(" {
			return nil, malformed(p.q, t)
		}
		for {
			lit, e := p.literal(c)
			if e != nil {
				return nil, e
			}
			c.vals = append(c.vals, lit)
			t := p.next()
			if t.kind == tkPunct && t.text == "," {
				continue
			}
			if t.kind == tkPunct && t.text == ")" {
				break
			}
			return nil, malformed(p.q, t)
		}
		return c, nil
	}
	lit, e := p.literal(c)
	if e != nil {
		return nil, e
	}
	c.vals = []literal{lit}
	return c, nil
}

// dateKeywords are the date literals Salesforce documents ("Date Formats and Date Literals").
var dateKeywords = regexp.MustCompile(`^(?i:YESTERDAY|TODAY|TOMORROW` +
	`|(LAST|THIS|NEXT)_(WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)` +
	`|(LAST|NEXT)_90_DAYS` +
	`|(LAST|NEXT)_N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS):[0-9]+` +
	`|N_(DAYS|WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)_AGO:[0-9]+)$`)

// literal reads a value and checks its type against the field, with Salesforce's messages.
func (p *parser) literal(c cmpExpr) (literal, *apiError) {
	t := p.next()
	lit := literal{kind: t.kind, text: t.text}
	isNull := t.kind == tkIdent && strings.EqualFold(t.text, "NULL")
	if isNull {
		if c.op != "=" && c.op != "!=" && c.op != "IN" && c.op != "NOTIN" {
			return lit, malformed(p.q, t)
		}
		lit.text = "NULL"
		return lit, nil
	}
	typeErr := func(want string, quoted bool) *apiError {
		q := "should not be enclosed in quotes"
		if quoted {
			q = "should be enclosed in quotes"
		}
		return fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf(
			"\n%s\n^\nERROR at Row:1:Column:%d\nvalue of filter criterion for field '%s' must be of type %s and %s", truncate(p.q, 200), t.pos, c.field, want, q))
	}
	switch c.typ {
	case tString, tID, tRef:
		if t.kind != tkString {
			if t.kind == tkEOF || t.kind == tkPunct || t.kind == tkOp {
				return lit, malformed(p.q, t)
			}
			return lit, typeErr("string", true)
		}
		if c.op == "LIKE" && c.typ != tString {
			return lit, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("invalid operator on id field: %s", c.field))
		}
	case tNumber:
		if t.kind != tkNumber {
			return lit, typeErr("double", false)
		}
	case tBool:
		if t.kind != tkIdent || !(strings.EqualFold(t.text, "TRUE") || strings.EqualFold(t.text, "FALSE")) {
			return lit, typeErr("boolean", false)
		}
		lit.text = strings.ToUpper(t.text)
	case tDate, tDateTime:
		ok := (c.typ == tDate && t.kind == tkDate) || (c.typ == tDateTime && t.kind == tkDateTime) ||
			(t.kind == tkIdent && dateKeywords.MatchString(t.text))
		if !ok {
			if t.kind == tkString {
				return lit, typeErr(c.typ.String(), false)
			}
			return lit, typeErr(c.typ.String(), false)
		}
	}
	if c.op == "LIKE" && c.typ != tString {
		return lit, fail(http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("invalid operator on field %s: LIKE applies to text fields", c.field))
	}
	return lit, nil
}

// get reads a field path of a record, following its reference fields (Account.Name through
// AccountId, Parent.Name through a polymorphic ParentId).
func (s *Server) get(obj *object, rec map[string]any, path string) any {
	segs := strings.Split(path, ".")
	for _, rel := range segs[:len(segs)-1] {
		f, _ := obj.relationship(rel)
		obj, rec = s.follow(f, rec)
		if rec == nil {
			return nil
		}
	}
	return rec[segs[len(segs)-1]]
}

// follow returns the object and record a reference field of rec points to (nil if none). A
// polymorphic reference yields the Name view of the record (Id, Name, Type).
func (s *Server) follow(f *field, rec map[string]any) (*object, map[string]any) {
	id, _ := rec[f.name].(string)
	name, target, ok := s.find(id)
	if !ok || (f.refTo != "" && name != f.refTo) {
		return f.target(), nil
	}
	if f.refTo != "" {
		return f.target(), target
	}
	return nameObject, map[string]any{"Id": target["Id"], "Name": target[nameField(name)], "Type": name}
}

func (c cmpExpr) eval(s *Server, rec map[string]any) bool {
	v := s.get(c.obj, rec, c.field)
	switch c.op {
	case "IN", "NOTIN":
		in := false
		for _, l := range c.vals {
			if match(c, v, "=", l) {
				in = true
			}
		}
		if c.op == "NOTIN" {
			return v != nil && !in
		}
		return in
	}
	return match(c, v, c.op, c.vals[0])
}

func match(c cmpExpr, v any, op string, l literal) bool {
	if l.text == "NULL" && l.kind == tkIdent {
		if op == "=" {
			return v == nil
		}
		return v != nil
	}
	if v == nil {
		return op == "!="
	}
	var cmp int
	switch c.typ {
	case tNumber:
		f, _ := strconv.ParseFloat(l.text, 64)
		x, _ := v.(float64)
		cmp = compareFloat(x, f)
	case tBool:
		b, _ := v.(bool)
		want := l.text == "TRUE"
		if op == "=" {
			return b == want
		}
		if op == "!=" {
			return b != want
		}
		return false
	case tDate, tDateTime:
		x := parseTime(v)
		lo, hi := dateRange(c, l)
		switch op {
		case "=":
			return !x.Before(lo) && !x.After(hi)
		case "!=":
			return x.Before(lo) || x.After(hi)
		case "<":
			return x.Before(lo)
		case "<=":
			return !x.After(hi)
		case ">":
			return x.After(hi)
		case ">=":
			return !x.Before(lo)
		}
		return false
	default:
		str, _ := v.(string)
		if op == "LIKE" {
			return like(str, l.text)
		}
		cmp = strings.Compare(strings.ToLower(str), strings.ToLower(l.text))
	}
	switch op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseTime(v any) time.Time {
	s, _ := v.(string)
	if t, err := time.Parse(sfTime, s); err == nil {
		return t
	}
	t, _ := time.Parse(time.DateOnly, s)
	return t
}

// dateRange is the interval a date literal stands for (a single instant or day, or a range of
// days for the relative literals).
func dateRange(c cmpExpr, l literal) (time.Time, time.Time) {
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	endOf := func(t time.Time) time.Time { return t.Add(24*time.Hour - time.Nanosecond) }
	switch l.kind {
	case tkDate:
		t, _ := time.Parse(time.DateOnly, l.text)
		if c.typ == tDate {
			return t, t
		}
		return t, endOf(t)
	case tkDateTime:
		t, err := time.Parse(time.RFC3339, l.text)
		if err != nil {
			t, _ = time.Parse("2006-01-02T15:04:05.000Z0700", l.text)
		}
		return t, t
	}
	lo, hi := literalRange(strings.ToUpper(l.text), day(c.now.UTC()))
	if c.typ == tDate {
		return lo, hi.AddDate(0, 0, -1)
	}
	return lo, hi.Add(-time.Nanosecond)
}

// literalRange is the half-open range of days [lo, hi) a date literal stands for on the day
// today (midnight UTC), as Salesforce documents each: weeks start on Sunday, the fiscal year is
// the calendar year, LAST_N_DAYS:n and LAST_90_DAYS include today, NEXT_N_DAYS:n and
// NEXT_90_DAYS start tomorrow, LAST_N_<unit>S:n are the n whole units before the current one,
// NEXT_N_<unit>S:n the n after it, N_<unit>S_AGO:n the one unit n units back.
func literalRange(lit string, today time.Time) (time.Time, time.Time) {
	kw, arg, _ := strings.Cut(lit, ":")
	n, _ := strconv.Atoi(arg)
	switch kw {
	case "TODAY":
		return today, today.AddDate(0, 0, 1)
	case "YESTERDAY":
		return today.AddDate(0, 0, -1), today
	case "TOMORROW":
		return today.AddDate(0, 0, 1), today.AddDate(0, 0, 2)
	case "LAST_90_DAYS":
		kw, n = "LAST_N_DAYS", 90
	case "NEXT_90_DAYS":
		kw, n = "NEXT_N_DAYS", 90
	}
	switch kw {
	case "LAST_N_DAYS":
		return today.AddDate(0, 0, -n), today.AddDate(0, 0, 1)
	case "NEXT_N_DAYS":
		return today.AddDate(0, 0, 1), today.AddDate(0, 0, n+1)
	case "N_DAYS_AGO":
		return today.AddDate(0, 0, -n), today.AddDate(0, 0, -n+1)
	}
	// The unit: THIS_MONTH, LAST_N_WEEKS, N_FISCAL_QUARTERS_AGO → MONTH, WEEK, QUARTER.
	unit := strings.TrimPrefix(kw, "N_")
	for _, p := range []string{"LAST_N_", "NEXT_N_", "LAST_", "THIS_", "NEXT_"} {
		unit = strings.TrimPrefix(unit, p)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(unit, "FISCAL_"), "_AGO"), "S")
	start, step := periodStart(unit, today)
	at := func(k int) time.Time { return step(start, k) }
	switch {
	case strings.HasPrefix(kw, "THIS_"):
		return at(0), at(1)
	case strings.HasPrefix(kw, "LAST_N_"):
		return at(-n), at(0)
	case strings.HasPrefix(kw, "NEXT_N_"):
		return at(1), at(n + 1)
	case strings.HasPrefix(kw, "LAST_"):
		return at(-1), at(0)
	case strings.HasPrefix(kw, "NEXT_"):
		return at(1), at(2)
	case strings.HasSuffix(kw, "_AGO"):
		return at(-n), at(-n + 1)
	}
	return today, today // not a literal: the parser refused it already
}

// periodStart returns the start of the unit (WEEK, MONTH, QUARTER, YEAR) that holds today, and
// a function that moves a period start by k units.
func periodStart(unit string, today time.Time) (time.Time, func(time.Time, int) time.Time) {
	months := func(m int) func(time.Time, int) time.Time {
		return func(t time.Time, k int) time.Time { return t.AddDate(0, k*m, 0) }
	}
	y, mo := today.Year(), today.Month()
	switch unit {
	case "WEEK":
		return today.AddDate(0, 0, -int(today.Weekday())), func(t time.Time, k int) time.Time { return t.AddDate(0, 0, 7*k) }
	case "MONTH":
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC), months(1)
	case "QUARTER":
		return time.Date(y, mo-(mo-1)%3, 1, 0, 0, 0, 0, time.UTC), months(3)
	default: // YEAR
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), months(12)
	}
}

// like matches SOQL LIKE: % any run, _ one character, \% and \_ literal; case-insensitive.
func like(s, pattern string) bool {
	var re strings.Builder
	re.WriteString("(?is)^")
	p := []rune(pattern)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && (p[i+1] == '%' || p[i+1] == '_'):
			re.WriteString(regexp.QuoteMeta(string(p[i+1])))
			i++
		case c == '%':
			re.WriteString(".*")
		case c == '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), s)
	return ok
}

// QueryResult is a query response page.
type QueryResult struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl,omitempty"`
	Records        []map[string]any `json:"records"`
}

func (s *Server) query(version, q string) (any, *apiError) {
	if strings.TrimSpace(q) == "" {
		return nil, fail(http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified")
	}
	qq, e := s.parse(q)
	if e != nil {
		return nil, e
	}
	t, _ := s.table(qq.object.name)
	var rows []map[string]any
	for _, id := range t.order {
		rec := t.rows[id]
		if qq.where == nil || qq.where.eval(s, rec) {
			rows = append(rows, rec)
		}
	}
	if len(qq.order) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for _, o := range qq.order {
				a, b := s.get(qq.object, rows[i], o.field), s.get(qq.object, rows[j], o.field)
				if c := compareValues(a, b, o.nullsFirst); c != 0 {
					if o.desc && a != nil && b != nil {
						return c > 0
					}
					return c < 0
				}
			}
			return false
		})
	}
	if qq.limit >= 0 && len(rows) > qq.limit {
		rows = rows[:qq.limit]
	}
	out := make([]map[string]any, 0, len(rows))
	for _, rec := range rows {
		out = append(out, s.project(version, qq, rec))
	}
	return s.page(version, out, 0, ""), nil
}

// compareValues orders two field values; nil sorts first or last.
func compareValues(a, b any, nullsFirst bool) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		if nullsFirst {
			return -1
		}
		return 1
	case b == nil:
		if nullsFirst {
			return 1
		}
		return -1
	}
	switch x := a.(type) {
	case float64:
		y, _ := b.(float64)
		return compareFloat(x, y)
	case bool:
		y, _ := b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	case string:
		y, _ := b.(string)
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	}
	return 0
}

// project builds a query record: attributes, then the selected fields, related records nested
// (Contact.Account.Name becomes {"Account": {"attributes": …, "Name": …}}; null when the
// reference is empty).
func (s *Server) project(version string, qq *query, rec map[string]any) map[string]any {
	out := map[string]any{"attributes": attributes(version, qq.object.name, rec["Id"].(string))}
	for _, path := range qq.fields {
		segs := strings.Split(path, ".")
		obj, cur, r := qq.object, out, rec
		for _, rel := range segs[:len(segs)-1] {
			f, _ := obj.relationship(rel)
			obj, r = s.follow(f, r)
			if r == nil {
				if _, set := cur[rel]; !set {
					cur[rel] = nil
				}
				break
			}
			nested, _ := cur[rel].(map[string]any)
			if nested == nil {
				typ := obj.name
				if obj == nameObject {
					typ, _ = r["Type"].(string)
				}
				nested = map[string]any{"attributes": attributes(version, typ, r["Id"].(string))}
				cur[rel] = nested
			}
			cur = nested
		}
		if r != nil {
			cur[segs[len(segs)-1]] = r[segs[len(segs)-1]]
		}
	}
	return out
}

// page returns the batch of rows starting at offset, opening a cursor for the rest.
func (s *Server) page(version string, rows []map[string]any, offset int, cursor string) QueryResult {
	end := min(offset+s.batchSize, len(rows))
	res := QueryResult{TotalSize: len(rows), Done: end >= len(rows), Records: rows[offset:end]}
	if res.Records == nil {
		res.Records = []map[string]any{}
	}
	if !res.Done {
		if cursor == "" {
			s.curSeq++
			cursor = fmt.Sprintf("01gD%014d", s.curSeq)
			s.cursors[cursor] = rows
			s.curList = append(s.curList, cursor)
			if len(s.curList) > MaxCursors {
				delete(s.cursors, s.curList[0])
				s.curList = s.curList[1:]
			}
		}
		res.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, cursor, end)
	}
	return res
}

func (s *Server) more(version, locator string) (any, *apiError) {
	id, off, ok := strings.Cut(locator, "-")
	n, err := strconv.Atoi(off)
	rows, known := s.cursors[id]
	if !ok || err != nil || !known || n <= 0 || n >= len(rows) {
		return nil, fail(http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
	}
	return s.page(version, rows, n, id), nil
}
