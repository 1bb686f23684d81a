package pickle

import (
	"errors"
	"io"
)

func loadLegacy(r io.ReaderAt, size int64) (*File, error) {
	return nil, errors.New("pickle: legacy format not supported yet")
}

func loadTar(r io.ReaderAt, size int64) (*File, error) {
	return nil, errors.New("pickle: tar format not supported yet")
}
