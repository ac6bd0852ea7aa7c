//go:build unix

package egress

import (
	"errors"
	"net"
	"syscall"
)

// peerOpen reports whether an idle connection may still be used: the peer has not closed it
// (a read would see end of file) nor sent anything unasked. It peeks without blocking, one
// system call.
func peerOpen(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // never wait for the socket to become readable
	})
	return err == nil && open
}
