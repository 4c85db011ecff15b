package icontrol

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol/icontroltest"
)

func TestExpiredTokenLogsInAgain(t *testing.T) {
	ctx := context.Background()
	s := device(t)
	c := dial(t, s)
	if s.Logins() != 1 {
		t.Fatalf("logins after Dial = %d", s.Logins())
	}
	s.ExpireTokens()
	p, err := c.Plan(ctx, desired())
	must(t, err)
	if p.Empty() || s.Logins() != 2 {
		t.Fatalf("plan after token expiry: empty=%v, logins=%d; want a plan and one new login", p.Empty(), s.Logins())
	}
	// Expiry in the middle of a transaction: the queued command is sent
	// again with the new token.
	s.ResetCounters()
	s.ExpireTokens()
	_, err = c.Apply(ctx, desired())
	must(t, err)
	if s.Logins() != 1 {
		t.Fatalf("logins during apply = %d, want 1", s.Logins())
	}
	var unauthorized int
	for _, r := range s.Requests() {
		if r.Status == 401 {
			unauthorized++
		}
	}
	if unauthorized != 1 {
		t.Fatalf("%d answers were 401, want 1", unauthorized)
	}
	if _, ok := s.Rule("/Common/" + bigip.RuleName); !ok {
		t.Fatal("rule not created")
	}
}

func TestWrongPassword(t *testing.T) {
	s := device(t)
	o := options(t, s)
	o.Password = "wrong"
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v, want ErrUnauthorized without the password", err)
	}
}

func TestConflictOnCreateIsUpdated(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    func() bigip.Desired
	}{
		{"in a transaction", desired},
		{"single write", func() bigip.Desired {
			d := desired()
			d.DataGroups, d.Virtuals = nil, nil
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := device(t)
			c := dial(t, s)
			d := tc.d()
			s.ConflictOnCreate("/Common/" + bigip.RuleName)
			p, err := c.Apply(ctx, d)
			must(t, err)
			if text, _ := s.Rule("/Common/" + bigip.RuleName); text != d.Rule.Text {
				t.Fatalf("rule after conflict = %q, want ours", text)
			}
			if len(p.Changes) == 0 || p.Changes[0].Action != ActionUpdate {
				t.Fatalf("returned plan should be the second one, updating the rule:\n%s", p)
			}
			p, err = c.Plan(ctx, d)
			must(t, err)
			if !p.Empty() {
				t.Fatalf("not in sync after conflict:\n%s", p)
			}
		})
	}
}

func TestServerErrorNamesObject(t *testing.T) {
	routes := "/Common/" + bigip.RoutesDataGroup
	for _, tc := range []struct {
		name    string
		methods []string
		wantOp  string
	}{
		{"read", []string{"GET"}, "read data-group"},
		{"create in transaction", []string{"POST"}, "commit transaction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := device(t)
			c := dial(t, s)
			s.FailOn(routes, tc.methods...)
			_, err := c.Apply(context.Background(), desired())
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 500 || !strings.Contains(err.Error(), routes) || !strings.Contains(err.Error(), tc.wantOp) {
				t.Fatalf("err = %v, want an APIError with status 500 naming %s and %q", err, routes, tc.wantOp)
			}
			// The transaction was rolled back: nothing was created.
			if _, ok := s.Rule("/Common/" + bigip.RuleName); ok {
				t.Fatal("rule created despite the failed transaction")
			}
		})
	}
}

func TestInvalidDesiredWritesNothing(t *testing.T) {
	s := device(t)
	c := dial(t, s)
	d := desired()
	d.DataGroups[0].Type = "bogus"
	_, err := c.Apply(context.Background(), d)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "DataGroups[0].Type") {
		t.Fatalf("err = %v, want ErrInvalid naming DataGroups[0].Type", err)
	}
	if s.Writes() != 0 {
		t.Fatalf("%d writes", s.Writes())
	}
}

func TestWrongCA(t *testing.T) {
	s := device(t)
	o := options(t, s)
	o.CAFile = otherCA(t)
	_, err := Dial(context.Background(), o)
	if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "CAFile") {
		t.Fatalf("err = %v, want ErrTLS mentioning CAFile", err)
	}
	if s.Logins() != 0 {
		t.Fatal("logged in over an unverified connection")
	}

	// Explicitly insecure works (lab use).
	o.CAFile, o.InsecureSkipVerify = "", true
	c, err := Dial(context.Background(), o)
	must(t, err)
	must(t, c.Close(context.Background()))
}

// otherCA writes a freshly generated CA certificate (not the one the fake
// server's certificate chains to) and returns its path.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	must(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return p
}

func TestCAFileProblems(t *testing.T) {
	s := device(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	must(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	for _, path := range []string{filepath.Join(dir, "missing.pem"), notPEM} {
		o := options(t, s)
		o.CAFile = path
		if _, err := Dial(context.Background(), o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "CAFile") {
			t.Errorf("CAFile %s: err = %v, want ErrInvalid naming CAFile", path, err)
		}
	}
}

func TestUnavailableRetriedWithoutGoBigipSleep(t *testing.T) {
	ctx := context.Background()
	s := device(t)
	c := dial(t, s)
	// Two 503s are retried by the transport (RetryWait 1 ms); go-bigip's
	// 10 s sleep would make this test take 20 s.
	s.Unavailable(2)
	_, err := c.Plan(ctx, desired())
	must(t, err)

	// More 503s than retries: a clear error, one go-bigip attempt.
	s.ResetCounters()
	s.Unavailable(10)
	_, err = c.Plan(ctx, desired())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := len(s.Requests()); n != 1+DefaultRetries503 {
		t.Fatalf("%d requests, want %d", n, 1+DefaultRetries503)
	}
}

func TestContextCancelsRetryWait(t *testing.T) {
	s := device(t)
	o := options(t, s)
	o.RetryWait = time.Hour
	c, err := Dial(context.Background(), o)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Unavailable(1)
	// Cancel once the 503 has been answered: the transport is then waiting
	// an hour to retry, and must stop at once.
	s.AfterRequest(func(r icontroltest.Request) {
		if r.Status == 503 {
			cancel()
		}
	})
	_, err = c.Plan(ctx, desired())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestBasicAuth(t *testing.T) {
	s := device(t)
	o := options(t, s)
	o.BasicAuth = true
	c, err := Dial(context.Background(), o)
	must(t, err)
	_, err = c.Apply(context.Background(), desired())
	must(t, err)
	if s.Logins() != 0 {
		t.Fatalf("%d token logins with BasicAuth", s.Logins())
	}
	o.Password = "nope"
	if _, err := Dial(context.Background(), o); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong basic password: err = %v, want ErrUnauthorized", err)
	}
}

func TestCloseLogsOut(t *testing.T) {
	s := device(t)
	c, err := Dial(context.Background(), options(t, s))
	must(t, err)
	must(t, c.Close(context.Background()))
	reqs := s.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "DELETE" || !strings.HasPrefix(last.Path, "/mgmt/shared/authz/tokens/") || last.Status != 200 {
		t.Fatalf("last request %+v, want the token DELETE", last)
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{URL: "https://bigip.example:8443", Username: "u", Password: "p"}
	must(t, good.Validate())
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		field  string
	}{
		{"no url", func(o *Options) { o.URL = "" }, "URL"},
		{"http", func(o *Options) { o.URL = "http://bigip" }, "URL"},
		{"path", func(o *Options) { o.URL = "https://bigip/mgmt" }, "URL"},
		{"userinfo", func(o *Options) { o.URL = "https://u:secretpw@bigip" }, "URL"},
		{"no user", func(o *Options) { o.Username = "" }, "Username"},
		{"no password", func(o *Options) { o.Password = "" }, "Password"},
		{"both tls", func(o *Options) { o.CAFile, o.InsecureSkipVerify = "ca.pem", true }, "CAFile"},
		{"partition", func(o *Options) { o.Partition = "A/B" }, "Partition"},
		{"timeout", func(o *Options) { o.Timeout = -1 }, "Timeout"},
		{"retry wait", func(o *Options) { o.RetryWait = -1 }, "RetryWait"},
		{"provider", func(o *Options) { o.LoginProvider = "a b" }, "LoginProvider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mutate(&o)
			err := o.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options."+tc.field) {
				t.Fatalf("err = %v, want ErrInvalid naming Options.%s", err, tc.field)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

func TestDesiredValidate(t *testing.T) {
	s := device(t)
	c := dial(t, s)
	for _, tc := range []struct {
		name   string
		mutate func(*bigip.Desired)
		field  string
	}{
		{"partition mismatch", func(d *bigip.Desired) { d.Partition = "Other" }, "Partition"},
		{"no rule text", func(d *bigip.Desired) { d.Rule.Text = " " }, "Rule.Text"},
		{"rule name", func(d *bigip.Desired) { d.Rule.Name = "/Common/x" }, "Rule.Name"},
		{"dup group", func(d *bigip.Desired) { d.DataGroups[1].Name = d.DataGroups[0].Name }, "DataGroups[1].Name"},
		{"dup record", func(d *bigip.Desired) {
			d.DataGroups[0].Records = append(d.DataGroups[0].Records, d.DataGroups[0].Records[0])
		}, "DataGroups[0].Records[1].Name"},
		{"virtual path", func(d *bigip.Desired) { d.Virtuals[0] = "/Common/vs_app" }, "Virtuals[0]"},
		{"dup virtual", func(d *bigip.Desired) { d.Virtuals[1] = d.Virtuals[0] }, "Virtuals[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := desired()
			tc.mutate(&d)
			_, err := c.Plan(context.Background(), d)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Desired."+tc.field) {
				t.Fatalf("err = %v, want ErrInvalid naming Desired.%s", err, tc.field)
			}
		})
	}
}

func TestPartition(t *testing.T) {
	s := icontroltest.New(testUser, testPass)
	defer s.Close()
	must(t, s.AddPool("Tenant", "p"))
	must(t, s.AddVirtual("Tenant", "vs", "/Tenant/p"))
	must(t, s.AddVirtual("Common", "vs", ""))
	o := options(t, s)
	o.Partition = "Tenant"
	c, err := Dial(context.Background(), o)
	must(t, err)
	d := desired()
	d.Partition, d.Virtuals = "", []string{"vs"}
	_, err = c.Apply(context.Background(), d)
	must(t, err)
	if _, ok := s.Rule("/Tenant/" + bigip.RuleName); !ok {
		t.Fatal("rule not created in /Tenant")
	}
	if v, _ := s.Virtual("/Tenant/vs"); !slices.Equal(v.Rules, []string{"/Tenant/" + bigip.RuleName}) || v.Pool != "/Tenant/p" {
		t.Fatalf("/Tenant/vs = %+v", v)
	}
	if v, _ := s.Virtual("/Common/vs"); len(v.Rules) != 0 {
		t.Fatalf("/Common/vs changed: %+v", v)
	}
}

func TestErrorsNeverShowKeys(t *testing.T) {
	// A device that echoes the request body in its error message.
	err := &APIError{Op: "update data-group", Object: "/Common/backgate_edge_keys", Status: 400,
		Err: errors.New(`01070734:3: Configuration error: bad record k1 := "` + keyHex + `"`)}
	got := scrub(err, []string{keyHex})
	if strings.Contains(got.Error(), keyHex) || !strings.Contains(got.Error(), "<redacted>") {
		t.Fatalf("scrubbed error: %v", got)
	}
	var ae *APIError
	if !errors.As(got, &ae) || ae.Status != 400 || ae.Object != "/Common/backgate_edge_keys" {
		t.Fatalf("scrub lost the APIError: %#v", got)
	}
	if plain := scrub(errors.New("x "+keyHex), []string{keyHex}); strings.Contains(plain.Error(), keyHex) {
		t.Fatal(plain)
	}
	if e := errors.New("fine"); scrub(e, []string{keyHex}) != e {
		t.Fatal("scrub changed an error without secrets")
	}
}

func TestRefusedQueuedCommandDiscardsTransaction(t *testing.T) {
	s := device(t)
	c := dial(t, s)
	s.RejectInTransaction("/Common/vs_app")
	_, err := c.Apply(context.Background(), desired())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Object != "/Common/vs_app" || ae.Op != "attach rule to virtual" {
		t.Fatalf("err = %v, want a 400 APIError for attaching to /Common/vs_app", err)
	}
	if n := s.OpenTransactions(); n != 0 {
		t.Fatalf("%d transactions left open", n)
	}
	if _, ok := s.Rule("/Common/" + bigip.RuleName); ok {
		t.Fatal("rule created although the transaction was discarded")
	}
}
