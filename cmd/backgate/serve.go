package main

import (
	"context"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"net"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "serve --config FILE")
	path := fs.String("config", "", "configuration file (YAML; every key is in docs/config.md)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := requiredConfig(fs, *path)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(e.Stdout, "%s: configuration is valid\n", *path)
		return nil
	}
	a, err := app.Build(ctx, cfg, e, app.Deps{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	return a.Run(ctx, ln)
}
