package tasks

import (
	"fmt"
	"os"
	"syscall"
)

// mapJournal gives f size bytes on disk (fallocate: a page touched later
// cannot fail for want of space, which in a mapping is a SIGBUS, not an
// error) and maps them shared and populated. A write into the mapping is
// in the page cache, like a write(2): it survives the process.
func mapJournal(f *os.File, size int) ([]byte, error) {
	fd := int(f.Fd())
	if err := syscall.Fallocate(fd, 0, 0, int64(size)); err != nil {
		return nil, fmt.Errorf("tasks: journal: fallocate: %w", err)
	}
	m, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		f.Truncate(0)
		return nil, fmt.Errorf("tasks: journal: mmap: %w", err)
	}
	return m, nil
}

func unmapJournal(m []byte) { syscall.Munmap(m) }
