package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/bundle"
)

// watchBundles installs every new or changed *.airlock file in dir, as 'airlock plugin install'
// would (signed by a trusted publisher, or refused with the reason in the log), every interval
// until ctx ends. Installing grants nothing: a new connector's tools appear once an admin grants
// it; a new version of a granted connector that asks for nothing more replaces the old one (calls
// in progress finish on it), and one that asks for more waits for an admin as pending.
func watchBundles(ctx context.Context, dir string, interval time.Duration, a *admin.Admin, logger *slog.Logger) {
	seen := map[string]time.Time{} // file → modification time when last handled
	scan := func() {
		files, err := filepath.Glob(filepath.Join(dir, "*.airlock"))
		if err != nil {
			logger.Warn("watching the plugin directory", "dir", dir, "err", err)
			return
		}
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil || seen[f].Equal(fi.ModTime()) {
				continue
			}
			seen[f] = fi.ModTime()
			installBundleFile(ctx, f, a, logger)
		}
	}
	scan()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			scan()
		}
	}
}

func installBundleFile(ctx context.Context, path string, a *admin.Admin, logger *slog.Logger) {
	log := logger.With("bundle", path)
	f, err := os.Open(path)
	if err != nil {
		log.Warn("bundle not installed", "err", err)
		return
	}
	defer f.Close()
	b, err := bundle.Read(f)
	if err != nil {
		log.Warn("bundle refused", "err", err)
		return
	}
	keys, err := bundle.TrustedKeys(ctx, a.Store())
	if err != nil {
		log.Warn("bundle not installed: reading the trust store", "err", err)
		return
	}
	v, err := bundle.Verify(b, keys, bundle.Options{})
	if err != nil {
		log.Warn("bundle refused", "err", err)
		return
	}
	res, err := bundle.Install(ctx, a.Store(), v, time.Now())
	if err != nil {
		log.Warn("bundle not installed", "err", err)
		return
	}
	if action, detail := installAction(res); !res.AlreadyInstalled {
		if err := audit.Action(ctx, a.Store(), "watch:"+filepath.Dir(path), action, res.Installed.Name, detail); err != nil {
			log.Error("bundle installed but not audited", "err", err)
		}
	}
	in := res.Installed
	switch {
	case res.AlreadyInstalled:
		return
	case in.Status == bundle.StatusPending:
		log.Info("connector version pending: it asks for more than the active one; an admin must approve it with 'airlock grant'",
			"connector", in.Name, "version", in.Version, "changes", len(res.Changes))
	default:
		log.Info("connector installed", "connector", in.Name, "version", in.Version, "publisher", in.Publisher)
	}
	if err := a.Sync(ctx); err != nil {
		log.Warn("loading the installed connector", "err", err)
	}
}
