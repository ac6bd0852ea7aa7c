package manifest

// scanSQL calls code for each byte of sql that is neither in a string literal, a quoted
// identifier nor a comment, with its index. It reads sql as SQLite's tokenizer does ('…' strings
// with doubled quotes inside, "…", `…` and […] identifiers, -- to the end of the line, /* to the first */ or the
// end), which PostgreSQL agrees with for the statements a database function holds. PostgreSQL's
// extended protocol enforces one statement by itself; the scan is what makes the same rule hold
// on SQLite, whose driver would run every statement of a string.
func scanSQL(sql string, code func(i int)) {
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		var end string
		switch {
		case c == '\'' || c == '"' || c == '`':
			end = string(c)
		case c == '[':
			end = "]"
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end = "\n"
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end, i = "*/", i+1
		default:
			code(i)
			continue
		}
		j := indexFrom(sql, i+1, end)
		if j < 0 {
			return // unterminated: the rest is not code
		}
		i = j + len(end) - 1
	}
}

func indexFrom(s string, from int, sub string) int {
	for j := from; j+len(sub) <= len(s); j++ {
		if s[j:j+len(sub)] == sub {
			return j
		}
	}
	return -1
}

// maxPlaceholder returns the highest $N in sql, outside quoted strings and comments.
func maxPlaceholder(sql string) int {
	n := 0
	scanSQL(sql, func(i int) {
		if sql[i] != '$' || i > 0 && sql[i-1] == '$' {
			return
		}
		j, v := i+1, 0
		for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' && v < 10000 {
			v = v*10 + int(sql[j]-'0')
			j++
		}
		n = max(n, v)
	})
	return n
}

// Statements returns how many statements sql holds: the number of semicolons outside literals
// and comments that are followed by more code, plus one (0 for a string with no code). A
// database function must hold exactly one.
func Statements(sql string) int {
	n, pending := 0, true
	scanSQL(sql, func(i int) {
		switch c := sql[i]; {
		case c == ';':
			pending = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		default:
			if pending {
				n++
				pending = false
			}
		}
	})
	return n
}
