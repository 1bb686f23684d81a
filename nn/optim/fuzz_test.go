package optim

import (
	"bytes"
	"os"
	"testing"

	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
)

// FuzzReadStateDict feeds PyTorch files to ReadStateDict, seeded with the
// optimizer states torch saved in testdata/optim. It must not panic; a state
// dict it reads must load into an optimizer or be refused with an error, and
// must survive WriteTorch and a second read unchanged.
func FuzzReadStateDict(f *testing.F) {
	for _, name := range []string{"sgd_state.pt", "adam_state.pt"} {
		b, err := os.ReadFile("../../testdata/optim/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := pickle.Load(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		sd, err := ReadStateDict(pf, "")
		if err != nil {
			return
		}
		for _, alg := range []Algorithm{SGD, Adam} {
			ps := []*nn.Tensor{nn.Zeros(3, 4), nn.Zeros(3), nn.Zeros(5)}
			o, err := New(alg, ps[:2], LR(0.1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.AddParamGroup(ps[2:]); err != nil {
				t.Fatal(err)
			}
			_ = o.LoadStateDict(sd)
		}
		var buf bytes.Buffer
		if err := WriteTorch(&buf, sd); err != nil {
			return // values WriteTorch cannot pickle (a nested list) are reported
		}
		pf2, err := pickle.Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("reading what WriteTorch wrote: %v", err)
		}
		back, err := ReadStateDict(pf2, "")
		if err != nil {
			t.Fatalf("second read: %v", err)
		}
		compareStateDicts(t, "round trip", back, sd)
	})
}
