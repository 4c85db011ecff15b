package main

import (
	"context"
	"errors"
)

func runPolicy(context.Context, *env, []string) error  { return errors.New("not wired yet") }
func runCatalog(context.Context, *env, []string) error { return errors.New("not wired yet") }
func runBigIP(context.Context, *env, []string) error   { return errors.New("not wired yet") }
func runKeys(context.Context, *env, []string) error    { return errors.New("not wired yet") }
