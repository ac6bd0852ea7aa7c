package secret_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/host/secret"
)

func Example() {
	// In production Lookup is nil (the process environment); here it is a fixed map.
	env := map[string]string{"SLACK_BOT_TOKEN": "xoxb-not-a-real-token"}
	src := secret.Mux{
		"env":  secret.Env{Lookup: func(name string) (string, bool) { v, ok := env[name]; return v, ok }},
		"file": secret.File{Dir: "/etc/airlock"},
	}
	ctx := context.Background()

	token, err := src.Resolve(ctx, "env:SLACK_BOT_TOKEN")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%v %q %#v\n", token, token, token)
	fmt.Println(len(token.Expose()), "bytes behind Expose")

	_, err = src.Resolve(ctx, "env:SALESFORCE_TOKEN")
	fmt.Println(errors.Is(err, secret.ErrNotFound))
	fmt.Println(err)

	_, err = src.Resolve(ctx, "vault:kv/slack")
	fmt.Println(err)
	// Output:
	// [REDACTED] [REDACTED] [REDACTED]
	// 21 bytes behind Expose
	// true
	// environment variable SALESFORCE_TOKEN is not set: export it or change the grant's credential reference: secret not found
	// secret reference scheme "vault" is not supported: the supported schemes are env, file
}
