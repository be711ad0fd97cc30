// Command pier is the pier app engine: "pier up" runs the engine, every
// other subcommand is a client of its API. main only wires the engine into
// the command tree of internal/cli and runs it.
package main

import (
	"context"
	"os"

	"pier/internal/cli"
	"pier/internal/engine"
)

func main() {
	hooks := cli.Hooks{
		Up: func(ctx context.Context, o cli.UpOptions) error {
			return engine.Up(ctx, engine.Config{Home: o.Home, HTTP: o.HTTP, API: o.API, Domain: o.Domain, Beanstalkd: o.Beanstalkd, TasksMemory: o.TasksMemory, SearchIdleClose: o.SearchIdleClose, Statsd: o.Statsd, Logger: o.Logger, LogRetention: o.LogRetention,
				ErrorsRetention: o.ErrorsRetention, ErrorsNodeRate: o.ErrorsNodeRate,
				AccessLog: o.AccessLog, MaxBodyBytes: o.MaxBodyBytes, IdleTimeout: o.IdleTimeout, WakeTimeout: o.WakeTimeout,
				HTTPS: o.HTTPS, TLSDir: o.TLSDir, ACMEEmail: o.ACMEEmail, ACMECA: o.ACMECA,
				CacheBytes: o.CacheBytes, CacheDisk: o.CacheDisk, CacheDiskBytes: o.CacheDiskBytes, CacheDiskMin: o.CacheDiskMin})
		},
		Serve: func(ctx context.Context, o cli.ServeOptions) error {
			return engine.Serve(ctx, engine.ServeConfig{Dir: o.Dir, App: o.App, HTTP: o.HTTP, Domain: o.Domain, Logger: o.Logger, Out: os.Stdout})
		},
	}
	os.Exit(cli.Execute(context.Background(), cli.New(hooks, os.Stdout, os.Stderr)))
}
