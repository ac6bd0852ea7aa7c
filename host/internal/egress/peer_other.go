//go:build !unix

package egress

import "net"

// peerOpen cannot peek here: a connection the peer closed is found when the request on it
// fails, and the request is sent again as h1Transport.RoundTrip describes.
func peerOpen(net.Conn) bool { return true }
