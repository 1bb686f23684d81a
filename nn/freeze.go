package nn

import (
	"fmt"
	"path"
)

// Freeze freezes the subtree m as a transfer-learning recipe means it: every
// parameter under m stops requiring grad (so no gradient is computed or
// stored for it, and TrainableParameters leaves it out), and every module
// under m is put in evaluation mode and kept there, so that a later Train on
// m or on any module that contains it leaves BatchNorm using and keeping its
// running statistics, and Dropout off. It is torch's
//
//	for p in m.parameters(): p.requires_grad_(False)
//	m.eval()  # and again after every model.train()
//
// done once. [Unfreeze] undoes it. Freezing a module that shares a child
// with an unfrozen one freezes the shared child for both.
func Freeze(m Module) {
	m.RequiresGrad(false)
	m.base().walkModules(func(_ string, b *Base) {
		b.frozen = true
		b.eval = true
	})
	MarkModified() // frozen layers' prepared copies are made afresh
}

// Unfreeze makes every parameter under m require grad again and releases
// the modules under m from Freeze's evaluation mode; they take the mode of
// the next Train or Eval (they stay in evaluation mode until then).
func Unfreeze(m Module) {
	m.RequiresGrad(true)
	m.base().walkModules(func(_ string, b *Base) { b.frozen = false })
}

// Frozen reports whether m is held in evaluation mode by [Freeze].
func Frozen(m Module) bool { return m.base().frozen }

// FreezeMatching freezes, as [Freeze] does, every submodule of m whose
// dotted name (as [NamedModules] gives it, "layer1.0.bn1") matches one of
// the patterns, in path.Match syntax with '.' as the separator: "layer[12]",
// "features.*" (the direct children of features), "*" (every direct child
// of m). It returns the names of the modules it froze, in NamedModules
// order; a malformed pattern is an error and freezes nothing.
func FreezeMatching(m Module, patterns ...string) ([]string, error) {
	for _, p := range patterns {
		if _, err := path.Match(dotted(p), ""); err != nil {
			return nil, fmt.Errorf("nn: freeze pattern %q: %w", p, err)
		}
	}
	var froze []string
	for _, nm := range NamedModules(m) {
		if nm.Name == "" {
			continue
		}
		for _, p := range patterns {
			if ok, _ := path.Match(dotted(p), dotted(nm.Name)); ok {
				Freeze(nm.Module)
				froze = append(froze, nm.Name)
				break
			}
		}
	}
	return froze, nil
}

// dotted turns a dotted module name into a slash-separated one, so that
// path.Match's '*' stops at a '.' as it stops at a '/'.
func dotted(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch c {
		case '.':
			b[i] = '/'
		case '/':
			b[i] = '.'
		}
	}
	return string(b)
}
