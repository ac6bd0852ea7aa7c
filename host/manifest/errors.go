package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a manifest or grant file.
type Error struct {
	// File is the file name given to Parse, ParseGrant, Load or LoadGrant.
	File string
	// Line is the 1-based line of the problem, or 0 when it concerns the whole file.
	Line int
	// Path locates the value, e.g. tools[1].input_schema; "" for the whole file.
	Path string
	// Msg says what is wrong and what to change.
	Msg string
}

// Error formats e as file:line: path: msg, leaving out empty parts.
func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&sb, ":%d", e.Line)
	}
	if sb.Len() > 0 {
		sb.WriteString(": ")
	}
	if e.Path != "" {
		sb.WriteString(e.Path + ": ")
	}
	sb.WriteString(e.Msg)
	return sb.String()
}

// ErrorList is several problems, ordered by line. Its Unwrap makes errors.As find each *Error.
type ErrorList []*Error

// Error returns one problem per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// maxErrors bounds how many problems one parse reports.
const maxErrors = 50

// result turns collected problems into nil, an *Error or an ErrorList ordered by line.
func result(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path))
	})
	errs = slices.CompactFunc(errs, func(a, b *Error) bool { return *a == *b })
	if len(errs) > maxErrors {
		more := len(errs) - maxErrors
		errs = append(errs[:maxErrors], &Error{File: errs[0].File, Msg: fmt.Sprintf("and %d more problems", more)})
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return ErrorList(errs)
}
