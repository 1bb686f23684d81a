package cmdutil

import (
	"encoding/json"
	"io"
	"regexp"
)

// numberList matches an indented JSON array of integers spread over lines.
// JSON strings cannot hold a raw newline, so it only matches arrays.
var numberList = regexp.MustCompile(`\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]`)

var listSep = regexp.MustCompile(`,\n\s*`)

// WriteJSON writes v as indented JSON followed by a newline, with arrays of
// integers (shapes) kept on one line: "shape": [64, 3, 7, 7].
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(CompactNumbers(b), '\n'))
	return err
}

// CompactNumbers puts every array of integers of the indented JSON b on
// one line.
func CompactNumbers(b []byte) []byte {
	return numberList.ReplaceAllFunc(b, func(m []byte) []byte {
		inner := numberList.FindSubmatch(m)[1]
		return append(append([]byte("["), listSep.ReplaceAll(inner, []byte(", "))...), ']')
	})
}
