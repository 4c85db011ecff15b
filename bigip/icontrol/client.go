package icontrol

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/f5devcentral/go-bigip"
)

// bigipAPI is the part of go-bigip's *bigip.BigIP this package calls. Tests
// run the real go-bigip against the fake server in package icontroltest.
type bigipAPI interface {
	IRule(name string) (*bigip.IRule, error)
	GetInternalDataGroup(name string) (*bigip.DataGroup, error)
	APICall(options *bigip.APIRequest) ([]byte, error)
}

var _ bigipAPI = (*bigip.BigIP)(nil)

// maxCAFile bounds the CA file read by Dial.
const maxCAFile = 1 << 20

// Client is a connection to one BIG-IP. Its methods are safe for concurrent
// use; requests are made one at a time.
type Client struct {
	url       string
	username  string
	password  string
	provider  string
	tokenAuth bool
	partition string
	log       *slog.Logger
	rt        *roundTripper
	inner     *http.Transport

	mu   sync.Mutex // serialises requests: sess.Token and sess.Transaction are shared
	sess *bigip.BigIP
	api  bigipAPI
}

// Dial validates o, sets up TLS and logs in (token auth) or checks the
// credentials with one read (BasicAuth). A certificate that does not verify
// gives an error wrapping ErrTLS, refused credentials one wrapping
// ErrUnauthorized.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} // #nosec G402 -- opt-in, documented as lab only
	if o.CAFile != "" {
		pool, err := readCAFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	inner := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.timeout(),
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	rt := &roundTripper{next: inner, retries: o.retries503(), wait: o.retryWait()}
	// The transport go-bigip holds never dials: every https request goes to
	// rt. HTTP/1 only, so that net/http does not try to register its own
	// HTTP/2 handler for https.
	outer := &http.Transport{Protocols: new(http.Protocols)}
	outer.Protocols.SetHTTP1(true)
	outer.RegisterProtocol("https", rt)

	base := strings.TrimSuffix(o.URL, "/")
	sess := &bigip.BigIP{
		Host:      base,
		Transport: outer,
		UserAgent: "backgate",
		ConfigOptions: &bigip.ConfigOptions{
			APICallTimeout: o.timeout(),
			TokenTimeout:   1200 * time.Second,
			APICallRetries: 1, // retries of 503s are made by rt, bounded by ctx
		},
	}
	if o.BasicAuth {
		sess.User, sess.Password = o.Username, o.Password
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		url: base, username: o.Username, password: o.Password, provider: o.loginProvider(),
		tokenAuth: !o.BasicAuth, partition: o.partition(), log: log,
		rt: rt, inner: inner, sess: sess, api: sess,
	}
	if c.tokenAuth {
		c.mu.Lock()
		err := c.loginLocked(ctx)
		c.mu.Unlock()
		if err != nil {
			inner.CloseIdleConnections()
			return nil, err
		}
		return c, nil
	}
	if _, _, err := c.request(ctx, "", "check credentials", c.url, http.MethodGet, "ltm/rule?$select=name", nil); err != nil {
		inner.CloseIdleConnections()
		return nil, err
	}
	return c, nil
}

func readCAFile(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: Options.CAFile: %w", ErrInvalid, err)
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: Options.CAFile %q: %w", ErrInvalid, path, err)
	}
	if len(pem) > maxCAFile {
		return nil, fmt.Errorf("%w: Options.CAFile %q: larger than %d bytes", ErrInvalid, path, maxCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: Options.CAFile %q: no PEM certificate in it", ErrInvalid, path)
	}
	return pool, nil
}

// Partition is the partition the client works in.
func (c *Client) Partition() string { return c.partition }

// Close logs out (deletes the token on the device) and closes idle
// connections. The client must not be used afterwards.
func (c *Client) Close(ctx context.Context) error {
	defer c.inner.CloseIdleConnections()
	c.mu.Lock()
	defer c.mu.Unlock()
	tok := c.sess.Token
	if !c.tokenAuth || tok == "" {
		return nil
	}
	c.rt.begin(ctx)
	_, err := c.sess.APICall(&bigip.APIRequest{Method: "delete", URL: "mgmt/shared/authz/tokens/" + tok})
	status := c.rt.end()
	c.sess.Token = ""
	if err != nil {
		return &APIError{Op: "log out", Object: c.url, Status: status, Err: redactToken(err, tok)}
	}
	return nil
}

// loginLocked gets a new token. c.mu must be held.
func (c *Client) loginLocked(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"username": c.username, "password": c.password, "loginProviderName": c.provider})
	if err != nil {
		return fmt.Errorf("icontrol: encode login: %w", err)
	}
	c.sess.Token, c.sess.Transaction = "", ""
	c.rt.begin(ctx)
	resp, err := c.sess.APICall(&bigip.APIRequest{Method: "post", URL: "mgmt/shared/authn/login", Body: string(body), ContentType: "application/json"})
	status := c.rt.end()
	if err != nil {
		e := c.classify(ctx, "log in as "+fmt.Sprintf("%q", c.username)+" to", c.url, status, err)
		return e
	}
	tok, err := parseLoginResponse(resp)
	if err != nil {
		return &APIError{Op: "log in to", Object: c.url, Status: status, Err: err}
	}
	c.sess.Token = tok
	c.log.Info("icontrol: logged in", "url", c.url, "user", c.username)
	return nil
}

// maxTokenLen bounds the token accepted from a login answer.
const maxTokenLen = 512

// parseLoginResponse extracts token.token from the answer to POST
// /mgmt/shared/authn/login. The token goes into a header, so only printable
// ASCII without spaces is accepted.
func parseLoginResponse(b []byte) (string, error) {
	var r struct {
		Token *struct {
			Token string `json:"token"`
		} `json:"token"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("login answer is not JSON: %w", err)
	}
	if r.Token == nil || r.Token.Token == "" {
		return "", errors.New("login answer has no token.token")
	}
	t := r.Token.Token
	if len(t) > maxTokenLen {
		return "", fmt.Errorf("login answer: token is %d bytes, more than %d", len(t), maxTokenLen)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f || t[i] == '/' || t[i] == '?' || t[i] == '#' || t[i] == '%' {
			return "", errors.New("login answer: token has a character not allowed in a header or URL path")
		}
	}
	return t, nil
}

// call runs fn, one go-bigip call that makes one HTTP request, with ctx bound
// to the request and with the coordination id txn ("" for none). With token
// auth, a 401 makes it log in again and run fn once more. It returns the
// final HTTP status (0 when no answer came).
func (c *Client) call(ctx context.Context, txn string, fn func(bigipAPI) error) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	relogged := false
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		c.sess.Transaction = txn
		c.rt.begin(ctx)
		err := fn(c.api)
		status := c.rt.end()
		c.sess.Transaction = ""
		if err == nil {
			return status, nil
		}
		if status == http.StatusUnauthorized && c.tokenAuth && !relogged {
			relogged = true
			c.log.Info("icontrol: token refused (401), logging in again", "url", c.url)
			if lerr := c.loginLocked(ctx); lerr != nil {
				return status, fmt.Errorf("token refused (401) and logging in again failed: %w", lerr)
			}
			continue
		}
		return status, err
	}
}

// request makes one generic iControl REST call. path is relative to
// /mgmt/tm/ unless it starts with "mgmt/". op and object name what is being
// done for the error message.
func (c *Client) request(ctx context.Context, txn, op, object, method, path string, body any) ([]byte, int, error) {
	var payload string
	if body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(body); err != nil {
			return nil, 0, fmt.Errorf("icontrol: %s %s: encode body: %w", op, object, err)
		}
		payload = strings.TrimSuffix(buf.String(), "\n")
	}
	var out []byte
	status, err := c.call(ctx, txn, func(api bigipAPI) error {
		var err error
		out, err = api.APICall(&bigip.APIRequest{Method: strings.ToLower(method), URL: path, Body: payload, ContentType: "application/json"})
		return err
	})
	if err != nil {
		return nil, status, c.classify(ctx, op, object, status, err)
	}
	return out, status, nil
}

// classify wraps err from a failed call into an *APIError, adding ErrTLS or
// the context's error when they are the cause.
func (c *Client) classify(ctx context.Context, op, object string, status int, err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		return err // from a nested login
	}
	if tlsError(err) {
		err = fmt.Errorf("%w (check Options.CAFile or the device certificate): %w", ErrTLS, err)
	} else if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if status == http.StatusUnauthorized && strings.HasPrefix(op, "log in") {
		err = fmt.Errorf("%w: credentials refused: %w", ErrUnauthorized, err)
	}
	return &APIError{Op: op, Object: object, Status: status, Err: err}
}

func redactToken(err error, tok string) error {
	if tok == "" || !strings.Contains(err.Error(), tok) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), tok, "<token>"))
}
