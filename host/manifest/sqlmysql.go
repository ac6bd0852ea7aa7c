package manifest

import (
	"errors"
	"strings"
)

// MySQLPlaceholders rewrites a database function's $N parameters into MySQL's positional ?
// markers, outside string literals, quoted identifiers and comments, and returns the rewritten
// statement with, for each ?, the index (from 0) of the parameter it binds: "… $2 … $1 … $2"
// gives "… ? … ? … ?" and [1 0 1]. Manifests keep one placeholder syntax for every backend.
//
// It refuses a statement that already holds a ? outside literals (it would bind a parameter the
// manifest does not declare in order) and one with a MySQL executable comment (/*! … */ or
// /*M! … */), whose text the server runs although a reader sees a comment; the text "/*!"
// is refused even inside a literal.
//
// MySQL also reads a backslash inside a '…' literal as an escape; the scan does not, so write a
// quote inside a literal doubled (the standard form). A literal it misreads can only make the
// count of ? differ from the parameters, which the server refuses: values are always bound by
// the server, never put into the text.
func MySQLPlaceholders(sql string) (string, []int, error) {
	var b strings.Builder
	var order []int
	var bad error
	last := 0
	if strings.Contains(sql, "/*!") || strings.Contains(sql, "/*M!") { // even in a literal: simpler than sure
		return "", nil, errors.New("it holds a MySQL executable comment (/*! … */), which the host does not run: write the statement without it")
	}
	scanSQL(sql, func(i int) {
		switch c := sql[i]; {
		case c == '?':
			bad = errors.New("it uses ? markers: write the parameters as $1, $2 … (the host binds them as MySQL markers itself)")
		case c == '$' && i+1 < len(sql) && sql[i+1] >= '1' && sql[i+1] <= '9' && (i == 0 || !identByte(sql[i-1])):
			j, v := i+1, 0
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' && v < 10000 {
				v = v*10 + int(sql[j]-'0')
				j++
			}
			b.WriteString(sql[last:i])
			b.WriteByte('?')
			order = append(order, v-1)
			last = j
		}
	})
	if bad != nil {
		return "", nil, bad
	}
	b.WriteString(sql[last:])
	return b.String(), order, nil
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// CodeWords returns the words of sql outside string literals, quoted identifiers and comments,
// in upper case and in order: "SELECT id FROM t -- DROP" gives [SELECT ID FROM T]. A backend uses
// it to tell what kind of statement a function declares.
func CodeWords(sql string) []string {
	var words []string
	start := -1
	end := func(i int) {
		if start >= 0 {
			words = append(words, strings.ToUpper(sql[start:i]))
			start = -1
		}
	}
	prev := -2
	scanSQL(sql, func(i int) {
		if prev != i-1 { // a literal or comment came between: it ends a word
			end(prev + 1)
		}
		prev = i
		c := sql[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || start >= 0 && c >= '0' && c <= '9' {
			if start < 0 {
				start = i
			}
			return
		}
		end(i)
	})
	end(prev + 1)
	return words
}
