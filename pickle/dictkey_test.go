package pickle

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestUnhashableDictKey: CPython's SETITEM hashes the key, so a dict keyed
// by a list (or a tuple holding one) makes pickle.load fail; ckpt refuses
// it too rather than read a dict torch cannot.
func TestUnhashableDictKey(t *testing.T) {
	for name, data := range map[string][]byte{
		// {[]: 1}
		"list": []byte("\x80\x02}]K\x01s."),
		// {((), []): 1}
		"tuple holding a list": []byte("\x80\x02})]\x86K\x01s."),
		// {{}: 1}
		"dict": []byte("\x80\x02}}K\x01s."),
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := unpickle(data, fuzzStorages)
			if err == nil || !strings.Contains(err.Error(), "unhashable "+name) {
				t.Fatalf("got %v, want the unhashable %s refused", err, name)
			}
		})
	}
}

// TestSharedTupleKey: a dict key made of tuples that share one another
// (each level pairs the one below with itself) is hashable, and its
// expansion doubles with every level: naming the dict's leaves must cost
// the number of tuples, not the expansion. A fuzzed 2 KB file of this shape
// took minutes and gigabytes when keys were formatted whole.
func TestSharedTupleKey(t *testing.T) {
	const levels = 60
	var p bytes.Buffer
	p.WriteString("\x80\x02}K\x01\x85q\x000") // {}, (1,) memo 0, popped
	for range levels {
		p.WriteString("h\x00h\x00\x86q\x000") // (m0, m0) -> memo 0
	}
	p.WriteString("h\x00K\x02s.") // dict[m0] = 2
	start := time.Now()
	root, _, err := unpickle(p.Bytes(), fuzzStorages)
	if err != nil {
		t.Fatal(err)
	}
	f := &File{Root: root}
	if err := f.finish(nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if len(f.Meta) != 1 {
		t.Fatalf("got %d metadata, want the one value", len(f.Meta))
	}
	name := f.Meta[0].Path
	if len(name) > maxKeyString+levels+8 || !strings.HasPrefix(name, "((((") || !strings.Contains(name, "...") {
		t.Errorf("key rendered as %d bytes %.80q, want a cut rendering starting with the nested tuples", len(name), name)
	}
}

// TestSharedTupleMessages: a value of tuples that share one another (each
// level pairs the one below with itself, and with a list and a dict) in an
// error message is rendered bounded, as Python's str would begin it. A
// fuzzed 179-byte legacy file whose magic number was such a tuple took 10 s
// when error messages formatted values whole.
func TestSharedTupleMessages(t *testing.T) {
	const levels = 20
	var p bytes.Buffer
	p.WriteString("\x80\x02K\x01]}\x87q\x000") // (1, [], {}) memo 0, popped
	for range levels {
		p.WriteString("h\x00h\x00\x86q\x000") // (m0, m0) -> memo 0
	}
	p.WriteString("h\x00.")
	start := time.Now()
	_, err := loadLegacy(bytes.NewReader(p.Bytes()), int64(p.Len()))
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if err == nil {
		t.Fatal("a tuple as the legacy magic number was read")
	}
	msg := err.Error()
	if want := `legacy magic number is "((((((`; !strings.Contains(msg, want) || len(msg) > 200 || !strings.Contains(msg, `...`) {
		t.Errorf("got %q, want a short message containing %s...", msg, want)
	}
	var b strings.Builder
	pyStr(&b, Tuple{int64(1), []any{"a", Tuple{nil}}, &Dict{Keys: []any{"k"}, Values: []any{1.5}}, true}, 100)
	if got, want := b.String(), "(1, ['a', (None,)], {'k': 1.5}, True)"; got != want {
		t.Errorf("pyStr = %s, want %s (Python's str)", got, want)
	}
}
