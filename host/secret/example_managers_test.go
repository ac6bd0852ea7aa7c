package secret_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/airlock-dev/airlock/host/secret"
)

func ExampleDoppler() {
	// Doppler's API, played by a local server that knows one secret of backend/prd.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case r.Header.Get("Authorization") != "Bearer dp.st.prd.example":
			w.WriteHeader(401)
			fmt.Fprint(w, `{"messages":["Invalid Auth token"],"success":false}`)
		case q.Get("project")+"/"+q.Get("config") != "backend/prd":
			w.WriteHeader(403)
			fmt.Fprint(w, `{"messages":["This token does not have access to requested project"],"success":false}`)
		case q.Get("name") == "SLACK_BOT_TOKEN":
			fmt.Fprint(w, `{"name":"SLACK_BOT_TOKEN","value":{"raw":"xoxb-not-a-real-token","computed":"xoxb-not-a-real-token"},"success":true}`)
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"messages":["Could not find requested secret"],"success":false}`)
		}
	}))
	defer api.Close()

	env := map[string]string{"DOPPLER_TOKEN": "dp.st.prd.example"}
	d, err := secret.NewDoppler(&secret.DopplerConfig{
		API:     api.URL, // empty: https://api.doppler.com
		Token:   "env:DOPPLER_TOKEN",
		Secrets: secret.Env{Lookup: func(name string) (string, bool) { v, ok := env[name]; return v, ok }},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	token, err := d.Resolve(ctx, "doppler:backend/prd/SLACK_BOT_TOKEN")
	fmt.Println(token, len(token.Expose()), err)

	_, err = d.Resolve(ctx, "doppler:backend/stg/SLACK_BOT_TOKEN")
	fmt.Println(errors.Is(err, secret.ErrDenied))
	fmt.Println(err)
	// Output:
	// [REDACTED] 21 <nil>
	// true
	// doppler: the token (reference env:DOPPLER_TOKEN) may not read project backend config stg (HTTP 403) for doppler:backend/stg/SLACK_BOT_TOKEN: a Doppler service token reads only the one project and config it was created in; create a service token in project backend config stg and add it to airlock.yaml as doppler.tokens["backend/stg"] (a secret reference such as env:DOPPLER_TOKEN_BACKEND_STG): access to the secret denied
}
