package localpath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.npy", filepath.Join(dir, "inside")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "a.npy"), []byte("x"), 0o600)
	for _, c := range []struct {
		name       string
		ok         bool
		withTarget bool
	}{
		{"a.npy", true, false},
		{"sub/a.npy", true, false},
		{"missing.npy", true, false},
		{"inside", true, false},
		{"", false, false},
		{"../a.npy", false, false},
		{"sub/../../a.npy", false, false},
		{"/etc/passwd", false, false},
		{`..\a.npy`, false, false},
		{`C:\a.npy`, false, false},
		{"c:a.npy", false, false},
		{"a\x00.npy", false, false},
		{"link", false, true},
	} {
		target, ok := Check(dir, c.name)
		if ok != c.ok || (target != "") != c.withTarget {
			t.Errorf("Check(dir, %q) = %q, %v; want ok %v, a target %v", c.name, target, ok, c.ok, c.withTarget)
		}
	}
	// Without a directory only the name is judged.
	if _, ok := Check("", "link"); !ok {
		t.Errorf(`Check("", "link") refused a plain name`)
	}
}
