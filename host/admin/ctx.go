package admin

import "context"

type adminKey struct{}

func withAdmin(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, adminKey{}, name)
}

func adminFrom(ctx context.Context) string {
	name, _ := ctx.Value(adminKey{}).(string)
	return name
}
