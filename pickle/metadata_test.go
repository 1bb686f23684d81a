package pickle

import (
	"archive/zip"
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// withRecord returns the zip archive base (a fixture of testdata/pickle)
// with a metadata record of content added under its prefix, stored or
// deflated.
func withRecord(t testing.TB, base, content []byte, method uint16) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	prefix, _, _ := strings.Cut(zr.File[0].Name, "/")
	w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/" + MetadataRecord, Method: method})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// recordBase is the fixture the record cases are added to
// (testdata/gen/pickle_fixtures.py makes it).
const recordBase = "../testdata/pickle/zip_state_dict.pt"

// recordCases are metadata records and what Load makes of them: the
// entries, or an error containing err.
var recordCases = []struct {
	name    string
	content string
	want    []KeyValue
	err     string
}{
	{"ordered", `{"z":"1","classes":"[\"a\",\"b\"]","a":""}`, []KeyValue{{"z", "1"}, {"classes", `["a","b"]`}, {"a", ""}}, ""},
	{"empty object", " {}\n", []KeyValue{}, ""},
	{"escapes", `{"\u00fc\n":"\ud83d\ude00"}`, []KeyValue{{"ü\n", "😀"}}, ""},
	{"duplicate key", `{"a":"1","a":"2"}`, nil, `key "a" given twice`},
	{"number value", `{"a":1}`, nil, `value of "a" is not a string`},
	{"null value", `{"a":null}`, nil, `value of "a" is not a string`},
	{"nested object", `{"a":{"b":"c"}}`, nil, `value of "a" is not a string`},
	{"array", `["a"]`, nil, "not a JSON object"},
	{"string", `"a"`, nil, "not a JSON object"},
	{"truncated", `{"a":"1"`, nil, "invalid JSON"},
	{"empty", ``, nil, "invalid JSON"},
	{"trailing value", `{"a":"1"}{}`, nil, "data after the JSON object"},
	{"trailing garbage", `{"a":"1"} x`, nil, "data after the JSON object"},
	{"invalid UTF-8", "{\"a\":\"\xff\"}", nil, "not valid UTF-8"},
	{"too large", `{"a":"` + strings.Repeat("x", MaxMetadataSize) + `"}`, nil, "exceeds limit"},
}

// TestMetadataRecord loads a fixture with each record added, stored and
// deflated: the entries come back in order, and a bad record is refused
// with an error naming it.
func TestMetadataRecord(t *testing.T) {
	base, err := os.ReadFile(recordBase)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Load(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Metadata != nil {
		t.Fatalf("a file without the record has metadata %q", plain.Metadata)
	}
	for _, tc := range recordCases {
		for _, method := range []uint16{zip.Store, zip.Deflate} {
			t.Run(tc.name, func(t *testing.T) {
				b := withRecord(t, base, []byte(tc.content), method)
				f, err := Load(bytes.NewReader(b), int64(len(b)))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `metadata record "archive/extra/ckpt_metadata.json"`) {
						t.Fatalf("got error %v, want one naming the record and containing %q", err, tc.err)
					}
					if strings.Contains(err.Error(), "\n") || len(err.Error()) > 300 {
						t.Errorf("error is not one short line: %.300q", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(f.Metadata, tc.want) {
					t.Errorf("got %q, want %q", f.Metadata, tc.want)
				}
				if len(f.Tensors) != len(plain.Tensors) || len(f.Meta) != len(plain.Meta) {
					t.Errorf("got %d tensors %d meta, want %d and %d as without the record", len(f.Tensors), len(f.Meta), len(plain.Tensors), len(plain.Meta))
				}
			})
		}
	}
}
