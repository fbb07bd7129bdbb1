//go:build aix || solaris

package ws

import "syscall"

// rawWrite writes p to the non-blocking descriptor fd with one write(2).
// These systems make system calls through libc, with no raw entry: a
// plain syscall.Write.
func rawWrite(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}
