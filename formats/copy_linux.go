package formats

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyRange copies the section sr of src to dst's current offset with
// copy_file_range, in steps that report progress.
func (p *progressWriter) copyRange(dst, src *os.File, sr *io.SectionReader) (int64, error) {
	_, off, n := sr.Outer()
	var done int64
	for done < n {
		roff := off + done
		k, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), nil, int(min(n-done, 8<<20)), 0)
		if err != nil {
			return done, err
		}
		if k == 0 {
			return done, io.ErrUnexpectedEOF
		}
		done += int64(k)
		p.add(int64(k))
	}
	return done, nil
}
