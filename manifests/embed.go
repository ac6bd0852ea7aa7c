// Package manifests holds the manifests of the connectors airlock ships (one YAML file per
// connector, next to nothing else) and the JSON Schemas of the manifest and grant formats
// themselves.
//
// The schemas are embedded so the host validates every manifest against exactly the schema in
// this folder; editors can use the same files for completion:
//
//	# yaml-language-server: $schema=../manifests/manifest.schema.json
//	abi: 1
//	name: slack
//	...
//
// host/manifest.Parse validates against [Schema] and then applies the checks a JSON Schema
// cannot express (unique names, credential hosts covered by network rules, the ABI version).
// manifests/FORMAT.md describes both formats field by field.
package manifests

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of the connector manifest format. Callers must not
// modify it.
//
//go:embed manifest.schema.json
var Schema []byte

// GrantSchema is the JSON Schema (draft 2020-12) of the grant format. Callers must not modify it.
//
//go:embed grant.schema.json
var GrantSchema []byte
