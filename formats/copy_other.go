//go:build !linux

package formats

import (
	"errors"
	"io"
	"os"
)

// copyRange is only available on Linux; elsewhere ReadFrom copies through
// user memory.
func (p *progressWriter) copyRange(dst, src *os.File, sr *io.SectionReader) (int64, error) {
	return 0, errors.ErrUnsupported
}
