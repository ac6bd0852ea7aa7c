//go:build !unix

package egress

import "net"

// peeker cannot peek here: a connection the peer closed is found when the request on it fails,
// and the request is sent again as h1Transport.RoundTrip describes.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return &peeker{} }

func (*peeker) peerOpen() bool { return true }
