package pickle

import (
	"bytes"
	"errors"
	"io"

	gopickle "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// Companion is a file beside a pickle that joblib.load opens while loading
// it: the array of an NDArrayWrapper or a ZNDArrayWrapper, the formats of
// joblib 0.9 and before, which wrote each array next to the pickle
// (x.pkl_01.npy, x.pkl_01.npy.z) and which joblib.load still reads
// (joblib.numpy_pickle_compat). joblib joins Name to the directory of the
// file it loads, whatever Name is, so an absolute name or one with ".."
// makes it open any file of the machine.
type Companion struct {
	// Entry is the part of the file whose pickle names the companion.
	Entry string
	// Offset is where in Entry's pickle the decoder stood after the
	// wrapper's BUILD (the end of the frame holding it, in a framed
	// pickle).
	Offset int64
	// Name is the file name the wrapper holds.
	Name string
	// Pickled reports that joblib reads the companion with
	// numpy.load(allow_pickle=True) (NDArrayWrapper): the pickle of an
	// .npy object array runs, and so does a file that is neither .npy
	// nor .npz, which numpy.load hands to pickle.load. Otherwise
	// (ZNDArrayWrapper) it reads the companion as a zlib stream of the
	// array's bytes, and the state that rebuilds the array is in the
	// pickle itself.
	Pickled bool
}

// companionWrappers are joblib's classes whose BUILD makes joblib.load
// open a companion file (NumpyUnpickler.load_build calls their read),
// with whether numpy.load unpickles it. Old pickles name the module
// joblib 0.9 defined them in; joblib.numpy_pickle imports them from
// numpy_pickle_compat, so both names load.
var companionWrappers = map[string]bool{
	"joblib.numpy_pickle.NDArrayWrapper":         true,
	"joblib.numpy_pickle_compat.NDArrayWrapper":  true,
	"joblib.numpy_pickle.ZNDArrayWrapper":        false,
	"joblib.numpy_pickle_compat.ZNDArrayWrapper": false,
}

// namesCompanionWrapper reports whether the findings name one of
// companionWrappers.
func (s *scanner) namesCompanionWrapper() bool {
	for _, f := range s.rep.Findings {
		if _, ok := companionWrappers[f.Global]; ok {
			return true
		}
	}
	return false
}

// companion records, for a BUILD on a companion wrapper o, the file name
// read will open: the name given to its constructor (REDUCE), replaced by
// the state's "filename", replaced by the slot state's (CPython's
// load_build applies them in that order). A name that is not a string
// makes os.path.join fail before anything is opened, and is not recorded.
func (d *joblibDecoder) companion(o *jbObject, state any, pickled bool) {
	name := o.filename
	var slots any
	if t, ok := state.(*types.Tuple); ok && t.Len() == 2 {
		state, slots = t.Get(0), t.Get(1)
	}
	for _, st := range []any{state, slots} {
		if dict, ok := st.(*types.Dict); ok {
			if v, ok := dict.Get("filename"); ok {
				name = v
			}
		}
	}
	o.filename = name
	if s, ok := name.(string); ok && len(d.companions) < MaxJoblibArrays {
		d.companions = append(d.companions, Companion{Offset: d.consumed - 1, Name: s, Pickled: pickled})
	}
}

// companions returns the companion files of a bare pickle, the first of
// the file, which the walk found well formed and naming a companion
// wrapper: it decodes the pickle with gopickle, every global an inert
// placeholder (nothing is imported or called), and records each wrapper's
// file name at its BUILD.
func (s *scanner) companions() {
	data := make([]byte, min(s.size, MaxPickleSize))
	n, _ := s.r.ReadAt(data, 0)
	d := &joblibDecoder{}
	u := gopickle.NewUnpickler(&countingReader{r: bytes.NewReader(data[:n]), n: &d.consumed})
	u.FindClass = func(module, name string) (any, error) { return &jbClass{d: d, name: module + "." + name}, nil }
	u.PersistentLoad = func(any) (any, error) { return nil, errors.New("persistent id in a pickle") }
	u.Load() // the walk has reported what is wrong with the pickle
	for _, c := range d.companions {
		c.Entry = "pickle 1"
		s.rep.Companions = append(s.rep.Companions, c)
	}
}

// countingReader counts the bytes read from r into *n.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	*c.n += int64(k)
	return k, err
}
