package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// benchDomain is the cookie domain; every bench host name is under it and
// resolves to 127.0.0.1 (see loopbackClient).
const benchDomain = "bench.localhost"

// loopbackClient is a browser: a cookie jar, redirects followed, and every
// host name dialled on 127.0.0.1 at the port the URL names.
func loopbackClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}}
	return &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}
}

// login signs in once the way a browser does: a protected URL redirects to
// the provider's login form, the form is posted, and the provider redirects
// back through backgate's callback to the URL. It returns the session
// cookie ("name=value").
func login(ctx context.Context, c *http.Client, appURL, issuer, cookieName string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, appURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: protected URL: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" || !strings.HasPrefix(resp.Request.URL.String(), issuer) {
		return "", fmt.Errorf("login: expected the provider's login form, got %d at %s", resp.StatusCode, resp.Request.URL.Redacted())
	}
	form := url.Values{"id": {id}, "username": {benchUsername}, "password": {benchPassword}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: form: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != appURL {
		return "", fmt.Errorf("login: expected to land on %s with 200, got %d at %s", appURL, resp.StatusCode, resp.Request.URL.Redacted())
	}
	u, _ := url.Parse(appURL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == cookieName {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", errors.New("login: no session cookie after the callback")
}
