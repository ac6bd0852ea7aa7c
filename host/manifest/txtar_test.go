package manifest

import (
	"bytes"
	"strings"
)

// A minimal txtar (golang.org/x/tools/txtar) reader and writer, so the golden tests need no
// dependency outside go.mod.

type archive struct {
	comment []byte
	files   []archiveFile
}

type archiveFile struct {
	name string
	data []byte
}

func parseArchive(data []byte) *archive {
	a := &archive{}
	var cur *archiveFile
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if name, ok := markerName(string(line)); ok {
			a.files = append(a.files, archiveFile{name: name})
			cur = &a.files[len(a.files)-1]
			continue
		}
		if cur == nil {
			a.comment = append(append(a.comment, line...), '\n')
		} else {
			cur.data = append(append(cur.data, line...), '\n')
		}
	}
	return a
}

func markerName(line string) (string, bool) {
	if strings.HasPrefix(line, "-- ") && strings.HasSuffix(line, " --") && len(line) > 6 {
		return strings.TrimSpace(line[3 : len(line)-3]), true
	}
	return "", false
}

func (a *archive) format() []byte {
	var buf bytes.Buffer
	buf.Write(a.comment)
	for _, f := range a.files {
		buf.WriteString("-- " + f.name + " --\n")
		buf.Write(f.data)
		if len(f.data) > 0 && f.data[len(f.data)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}
