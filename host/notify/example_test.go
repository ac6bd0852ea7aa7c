package notify_test

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/notify"
)

// A receiver checks a delivery: the X-Airlock-Signature header against the raw body, with the
// webhook's secret, within five minutes of its own clock.
func ExampleVerify() {
	key := []byte("the webhook's secret")
	body := []byte(`{"event":"approval.pending","id":"ap_3f9c2a1b"}`)
	sent := time.Unix(1764849600, 0)
	header := notify.Sign(key, sent, body) // what airlock sends

	fmt.Println(header)
	fmt.Println(notify.Verify(key, header, body, sent.Add(time.Minute), 0))
	fmt.Println(notify.Verify(key, header, body, sent.Add(time.Hour), 0))
	// Output:
	// t=1764849600,v1=bc08d3ce0d64cee80d4839ebb61a1d938e9c02029f6c6ecd25f5b2be51861484
	// <nil>
	// notify: the signature's timestamp is too far from now (a replay?)
}
