//go:build unix && !aix && !solaris

package ws

import (
	"syscall"
	"unsafe"
)

// rawWrite writes p to the non-blocking descriptor fd with one write(2).
//
// A raw syscall: the socket is non-blocking, so the call returns at once
// and the scheduler need not hand this P to another thread meanwhile
// (syscall.Write's entersyscall/exitsyscall, and the sysmon retakes they
// invite, cost more than the write's own entry).
func rawWrite(fd uintptr, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
