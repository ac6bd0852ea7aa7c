package main

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// awsFileConfig is the aws: block of airlock.yaml. Its presence (even `aws: {}`) turns on the
// aws-sm: and aws-ssm: reference schemes; credentials come from the SDK's standard chain
// (AWS_ACCESS_KEY_ID…, ~/.aws profiles, web identity, ECS/EC2 roles), never from this file.
//
//	aws: {region: eu-west-1, profile: airlock, endpoint: https://vpce-….secretsmanager.eu-west-1.vpce.amazonaws.com, cache_ttl: 30s}
type awsFileConfig struct {
	Region   string        `yaml:"region"`    // default AWS_REGION / the profile's
	Profile  string        `yaml:"profile"`   // default AWS_PROFILE, then "default"
	Endpoint string        `yaml:"endpoint"`  // a VPC endpoint or a test server; default AWS's
	CacheTTL time.Duration `yaml:"cache_ttl"` // default 30s; negative: no cache
}

// addAWS registers the aws-sm: and aws-ssm: sources in mux when the configuration has an aws:
// block.
func (g *globals) addAWS(ctx context.Context, cfg *fileConfig, mux secret.Mux) error {
	c := cfg.AWS
	if c == nil {
		return nil
	}
	src, err := secret.NewAWS(ctx, &secret.AWSConfig{Region: c.Region, Profile: c.Profile, Endpoint: c.Endpoint, CacheTTL: c.CacheTTL})
	if err != nil {
		return fmt.Errorf("%s: %w", g.config, err)
	}
	mux["aws-sm"], mux["aws-ssm"] = src, src
	return nil
}
