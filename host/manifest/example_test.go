package manifest_test

import (
	"fmt"

	"github.com/airlock-dev/airlock/host/manifest"
)

func ExampleParse() {
	_, err := manifest.Parse("slack.yaml", []byte(`abi: 1
name: slack
version: 1.0.0
publisher: airlock-dev
description: Slack.
module: {path: slack.wasm}
tools:
  - name: post_message
    description: Post a message.
    scope: [chat:write]
    input_schema: {type: object}
  - name: list_channels
    description: List channels.
    scopes: channels:read
    input_schema: {type: object}
`))
	fmt.Println(err)
	// Output:
	// slack.yaml:10: tools[0]: unknown key "scope" (did you mean "scopes"?)
	// slack.yaml:14: tools[1].scopes: expected a list of strings, got a string
}

func ExampleTool_ValidateInput() {
	m, err := manifest.Parse("demo.yaml", []byte(`abi: 1
name: demo
version: 1.0.0
publisher: acme
description: Demo.
module: {path: demo.wasm}
tools:
  - name: history
    description: Read a channel's history.
    input_schema:
      type: object
      required: [channel]
      properties:
        channel: {type: string}
        limit: {type: integer, maximum: 200}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	tool, _ := m.Tool("history")
	fmt.Println(tool.ValidateInput([]byte(`{"limit": 500}`)))
	// Output:
	// invalid arguments: "channel" is required; "limit" must be at most 200 (got 500)
}
