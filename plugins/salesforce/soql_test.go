package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/fakesalesforce"
	"github.com/airlock-dev/airlock/pdk"
)

func cond(field, op string, value any, typ string) condition {
	b, _ := json.Marshal(value)
	return condition{Field: field, Op: op, Value: b, Type: typ}
}

func TestBuildSOQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		q    queryArgs
		want string
	}{
		{"plain", queryArgs{Fields: []string{"Id", "Name"}}, "SELECT Id, Name FROM Account LIMIT 11"},
		{"conditions", queryArgs{Fields: []string{"Id"}, Where: []condition{
			cond("Industry", "=", "Energy", ""), cond("AnnualRevenue", ">=", 1000000, ""),
			cond("IsDeleted", "!=", true, ""), cond("Website", "=", nil, ""),
		}}, "SELECT Id FROM Account WHERE Industry = 'Energy' AND AnnualRevenue >= 1000000 AND IsDeleted != TRUE AND Website = NULL LIMIT 11"},
		{"in and like", queryArgs{Fields: []string{"Id"}, Where: []condition{
			cond("Industry", "in", []any{"Energy", "Technology"}, ""), cond("Name", "LIKE", "Ac%", ""),
			cond("BillingCity", "not  in", []any{"Austin"}, ""),
		}}, "SELECT Id FROM Account WHERE Industry IN ('Energy', 'Technology') AND Name LIKE 'Ac%' AND BillingCity NOT IN ('Austin') LIMIT 11"},
		{"dates", queryArgs{Fields: []string{"Id"}, Where: []condition{
			cond("CloseDate", "<", "2024-06-30", "date"), cond("CreatedDate", ">", "2024-01-01T10:00:00+02:00", "datetime"),
			cond("LastModifiedDate", "=", "last_n_days:30", "date_literal"),
		}}, "SELECT Id FROM Account WHERE CloseDate < 2024-06-30 AND CreatedDate > 2024-01-01T08:00:00Z AND LastModifiedDate = LAST_N_DAYS:30 LIMIT 11"},
		{"order", queryArgs{Fields: []string{"Id", "Account.Name"}, OrderBy: []orderItem{{Field: "Name"}, {Field: "Amount", Direction: "desc", Nulls: "last"}}},
			"SELECT Id, Account.Name FROM Account ORDER BY Name ASC, Amount DESC NULLS LAST LIMIT 11"},
		// Injection attempts stay inside an escaped literal.
		{"quote breakout", queryArgs{Fields: []string{"Id"}, Where: []condition{cond("Name", "=", "' OR Name != '", "")}},
			`SELECT Id FROM Account WHERE Name = '\' OR Name != \'' LIMIT 11`},
		{"backslash breakout", queryArgs{Fields: []string{"Id"}, Where: []condition{cond("Name", "=", `\' OR Name != \'`, "")}},
			`SELECT Id FROM Account WHERE Name = '\\\' OR Name != \\\'' LIMIT 11`},
		{"newline and tab", queryArgs{Fields: []string{"Id"}, Where: []condition{cond("Name", "=", "a\nLIMIT 1\r\t\"b\"", "")}},
			`SELECT Id FROM Account WHERE Name = 'a\nLIMIT 1\r\t\"b\"' LIMIT 11`},
		{"in list breakout", queryArgs{Fields: []string{"Id"}, Where: []condition{cond("Name", "IN", []any{"a') OR (Name != 'b"}, "")}},
			`SELECT Id FROM Account WHERE Name IN ('a\') OR (Name != \'b') LIMIT 11`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildSOQL(tt.q, "Account", 11)
			if err != nil {
				t.Fatalf("buildSOQL: %v", err)
			}
			if got != tt.want {
				t.Errorf("buildSOQL =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

func TestBuildSOQLRefuses(t *testing.T) {
	t.Parallel()
	ok := []string{"Id"}
	tests := []struct {
		name string
		q    queryArgs
		want string // part of the message
	}{
		{"no fields", queryArgs{}, "between 1 and"},
		{"field with FROM", queryArgs{Fields: []string{"Id FROM User"}}, "not a Salesforce field name"},
		{"field with comma", queryArgs{Fields: []string{"Id,Password"}}, "not a Salesforce field name"},
		{"field with paren", queryArgs{Fields: []string{"COUNT(Id)"}}, "not a Salesforce field name"},
		{"subquery", queryArgs{Fields: []string{"(SELECT Id FROM Contacts)"}}, "not a Salesforce field name"},
		{"keyword field", queryArgs{Fields: []string{"FROM"}}, "not a Salesforce field name"},
		{"reserved field", queryArgs{Fields: []string{"Having"}}, "not a Salesforce field name"},
		{"reserved last segment", queryArgs{Fields: []string{"Account.Group"}}, "not a Salesforce field name"},
		{"unicode field", queryArgs{Fields: []string{"Nаme"}}, "not a Salesforce field name"}, // Cyrillic а
		{"empty segment", queryArgs{Fields: []string{"Account..Name"}}, "not a Salesforce field name"},
		{"too deep", queryArgs{Fields: []string{"A.B.C.D.E.F"}}, "not a Salesforce field name"},
		{"duplicate", queryArgs{Fields: []string{"Id", "id"}}, "twice"},
		{"where field", queryArgs{Fields: ok, Where: []condition{cond("Name = 'x' OR Id", "=", "y", "")}}, "not a Salesforce field name"},
		{"operator", queryArgs{Fields: ok, Where: []condition{cond("Name", "= 'x' OR Name =", "y", "")}}, "operator"},
		{"operator includes", queryArgs{Fields: ok, Where: []condition{cond("Name", "INCLUDES", "y", "")}}, "operator"},
		{"exponent", queryArgs{Fields: ok, Where: []condition{{Field: "Amount", Op: ">", Value: json.RawMessage(`1e9`)}}}, "plain decimal"},
		{"object value", queryArgs{Fields: ok, Where: []condition{{Field: "Name", Op: "=", Value: json.RawMessage(`{"a":1}`)}}}, "string, number, boolean or null"},
		{"missing value", queryArgs{Fields: ok, Where: []condition{{Field: "Name", Op: "="}}}, "no value"},
		{"null with <", queryArgs{Fields: ok, Where: []condition{cond("Name", "<", nil, "")}}, "null"},
		{"list with =", queryArgs{Fields: ok, Where: []condition{cond("Name", "=", []any{"a"}, "")}}, "use IN"},
		{"empty IN", queryArgs{Fields: ok, Where: []condition{cond("Name", "IN", []any{}, "")}}, "list of 1"},
		{"null in IN", queryArgs{Fields: ok, Where: []condition{cond("Name", "IN", []any{nil}, "")}}, "null"},
		{"LIKE number", queryArgs{Fields: ok, Where: []condition{cond("Name", "LIKE", 5, "")}}, "text value"},
		{"bad date", queryArgs{Fields: ok, Where: []condition{cond("CloseDate", "=", "2024-02-30", "date")}}, "not a valid date"},
		{"date injection", queryArgs{Fields: ok, Where: []condition{cond("CloseDate", "=", "2024-01-01 OR Name != ''", "date")}}, "must be a date"},
		{"literal injection", queryArgs{Fields: ok, Where: []condition{cond("CloseDate", "=", "TODAY OR Name != ''", "date_literal")}}, "not a SOQL date literal"},
		{"datetime injection", queryArgs{Fields: ok, Where: []condition{cond("CreatedDate", "=", "2024-01-01T00:00:00Z OR Id != null", "datetime")}}, "date and time"},
		{"unknown type", queryArgs{Fields: ok, Where: []condition{cond("Name", "=", "x", "raw")}}, "not supported"},
		{"type on number", queryArgs{Fields: ok, Where: []condition{cond("Amount", "=", 5, "date")}}, "leave out type"},
		{"control character", queryArgs{Fields: ok, Where: []condition{cond("Name", "=", "a\x00b", "")}}, "control character"},
		{"escape char", queryArgs{Fields: ok, Where: []condition{cond("Name", "=", "a\x1bb", "")}}, "control character"},
		{"too long", queryArgs{Fields: ok, Where: []condition{cond("Name", "=", strings.Repeat("a", maxValueLen+1), "")}}, "longer than"},
		{"order injection", queryArgs{Fields: ok, OrderBy: []orderItem{{Field: "Name", Direction: "ASC LIMIT 1"}}}, "ASC or DESC"},
		{"nulls injection", queryArgs{Fields: ok, OrderBy: []orderItem{{Field: "Name", Nulls: "LAST, Id"}}}, "FIRST or LAST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildSOQL(tt.q, "Account", 11)
			var pe *pdk.Error
			if !errors.As(err, &pe) {
				t.Fatalf("buildSOQL = %q, %v; want a tool error", got, err)
			}
			if pe.Category != pdk.CategoryCorrectable || !strings.Contains(pe.Message, tt.want) {
				t.Errorf("error = %+v, want a correctable error containing %q", pe, tt.want)
			}
		})
	}
}

// TestDateLiterals: every date literal Salesforce documents is accepted, and look-alikes are not.
func TestDateLiterals(t *testing.T) {
	t.Parallel()
	valid := []string{"YESTERDAY", "TODAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH",
		"THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "LAST_N_DAYS:365", "NEXT_N_DAYS:15",
		"N_DAYS_AGO:3", "NEXT_N_WEEKS:4", "LAST_N_WEEKS:52", "N_WEEKS_AGO:2", "NEXT_N_MONTHS:12",
		"LAST_N_MONTHS:2", "N_MONTHS_AGO:6", "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER",
		"NEXT_N_QUARTERS:2", "LAST_N_QUARTERS:2", "N_QUARTERS_AGO:3", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR",
		"NEXT_N_YEARS:5", "LAST_N_YEARS:5", "N_YEARS_AGO:2", "THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER",
		"NEXT_FISCAL_QUARTER", "NEXT_N_FISCAL_QUARTERS:6", "LAST_N_FISCAL_QUARTERS:6", "N_FISCAL_QUARTERS_AGO:6",
		"THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR", "NEXT_FISCAL_YEAR", "NEXT_N_FISCAL_YEARS:3",
		"LAST_N_FISCAL_YEARS:3", "N_FISCAL_YEARS_AGO:3", "n_days_ago:7"}
	for _, v := range valid {
		got, err := literal("CloseDate", v, "date_literal", "=")
		if err != nil || got != strings.ToUpper(v) {
			t.Errorf("literal(%q) = %q, %v; want it accepted", v, got, err)
		}
	}
	invalid := []string{"N_N_DAYS:3", "LAST_N_DAYS_AGO:3", "NEXT_N_WEEKS_AGO:1", "THIS_90_DAYS", "LAST_N_DAY:3",
		"N_DAYS_AGO", "LAST_N_DAYS", "TODAY:1", "THIS_N_MONTHS:2", "N_THIS_MONTH_AGO:1", "LAST_N_DAYS:12345",
		"LAST_N_DAYS:-1", "LAST_DAY", "NEXT_FISCAL_MONTH", "TODAY OR Name != ''"}
	for _, v := range invalid {
		if got, err := literal("CloseDate", v, "date_literal", "="); err == nil {
			t.Errorf("literal(%q) = %q, want it refused", v, got)
		}
	}
}

// TestReservedWords: identifiers are checked against Salesforce's reserved-word list, so the
// standard Order and Group objects and their relationships are usable.
func TestReservedWords(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"Order", "OrderNumber", "Group.Name", "Order.OrderNumber", "Type", "Data", "Category"} {
		if !validFieldPath(f) {
			t.Errorf("validFieldPath(%q) = false, want true", f)
		}
	}
	for _, f := range []string{"Group", "Select", "where", "Account.Limit", "Nulls"} {
		if validFieldPath(f) {
			t.Errorf("validFieldPath(%q) = true, want false (a reserved word)", f)
		}
	}
	for _, o := range []string{"Order", "Group", "OrderItem", "GroupMember"} {
		if !validObject(o) {
			t.Errorf("validObject(%q) = false, want true", o)
		}
	}
	for _, o := range []string{"Select", "From", "Where"} {
		if validObject(o) {
			t.Errorf("validObject(%q) = true, want false", o)
		}
	}
	got, err := buildSOQL(queryArgs{Fields: []string{"Id", "OrderNumber", "Account.Name"}, OrderBy: []orderItem{{Field: "OrderNumber"}}}, "Order", 6)
	if want := "SELECT Id, OrderNumber, Account.Name FROM Order ORDER BY OrderNumber ASC LIMIT 6"; err != nil || got != want {
		t.Errorf("buildSOQL on Order = %q, %v; want %q", got, err, want)
	}
}

// queryFake runs SOQL against a fake Salesforce directly and returns the status and records.
func queryFake(t testing.TB, fake *fakesalesforce.Server, token, soql string) (int, []map[string]any, string) {
	t.Helper()
	r := httptest.NewRequest("GET", "https://acme.my.salesforce.com/services/data/v61.0/query?q="+url.QueryEscape(soql), nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	fake.ServeHTTP(w, r)
	var res struct {
		Records []map[string]any `json:"records"`
	}
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("query answer %s: %v", w.Body, err)
		}
	}
	return w.Code, res.Records, w.Body.String()
}

// FuzzQuoteRoundTrip checks that any value the connector accepts comes back from a SOQL parser
// as exactly that value: a record whose Name is the value is found by Name = quote(value), and
// nothing else is.
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"' OR Name != '", `\' OR Name != \'`, "a\nb", `\`, `'`, `\\'`, "%", "_", `\%`,
		"') OR (Name != '", "x' LIMIT 1 --", "\"", "Ünïcödé ✓", "\t\b\f\r"} {
		f.Add(s)
	}
	fake := fakesalesforce.New()
	fake.AddToken("tok")
	fake.SetAPILimit(1 << 30)
	f.Fuzz(func(t *testing.T, s string) {
		lit, err := quote("Name", s)
		if err != nil {
			return // refused values never reach Salesforce
		}
		if len(s) > 255 {
			return // longer than a Name can be
		}
		id := fake.Add("Account", map[string]any{"Name": s})
		status, recs, body := queryFake(t, fake, "tok", "SELECT Id, Name FROM Account WHERE Name = "+lit)
		if status != http.StatusOK {
			t.Fatalf("quote(%q) = %s: the query failed: %s", s, lit, body)
		}
		found := false
		for _, r := range recs {
			name, _ := r["Name"].(string)
			if !strings.EqualFold(name, s) {
				t.Fatalf("quote(%q) = %s matched a record named %q: the value escaped its literal", s, lit, name)
			}
			found = found || r["Id"] == id
		}
		if !found {
			t.Fatalf("quote(%q) = %s did not find the record named by it", s, lit)
		}
	})
}
