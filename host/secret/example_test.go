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
	// secret reference scheme "vault" is not supported: the supported schemes are env, file: malformed secret reference
}

func ExampleStore() {
	ctx := context.Background()
	backend := &secret.MemoryBackend{} // the host's state store in production
	key, _ := secret.NewMasterKey()    // secret.LoadMasterKey(stateDir) in production

	st, err := secret.OpenStore(ctx, backend, key)
	if err != nil {
		panic(err)
	}
	_ = st.Set(ctx, "slack_bot", secret.New("xoxb-not-a-real-token"))
	token, _ := secret.Mux{"store": st}.Resolve(ctx, "store:slack_bot")
	fmt.Println(token, len(token.Expose()))

	list, _ := st.List(ctx)
	fmt.Println(len(list), list[0].Name)

	newKey, _ := secret.NewMasterKey()
	if err := secret.RotateMasterKey(ctx, backend, key, newKey); err != nil {
		panic(err)
	}
	_, err = secret.OpenStore(ctx, backend, key)
	fmt.Println(errors.Is(err, secret.ErrWrongMasterKey))
	// Output:
	// [REDACTED] 21
	// 1 slack_bot
	// true
}
