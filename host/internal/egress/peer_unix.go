//go:build unix

package egress

import (
	"errors"
	"net"
	"syscall"
)

// peeker checks whether an idle connection may still be used: the peer has not closed it (a
// read would see end of file) nor sent anything unasked. It peeks without blocking, one system
// call and no allocation.
type peeker struct {
	rc   syscall.RawConn // nil: the connection has no descriptor to peek at (net.Pipe in tests)
	open bool
	buf  [1]byte
	fn   func(fd uintptr) bool
}

func newPeeker(conn net.Conn) *peeker {
	p := &peeker{}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
		}
	}
	p.fn = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		p.open = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true // never wait for the socket to become readable
	}
	return p
}

func (p *peeker) peerOpen() bool {
	if p.rc == nil {
		return true
	}
	p.open = false
	return p.rc.Read(p.fn) == nil && p.open
}
