package demo

// DemoUser is a person who can sign in at the demo OpenID Provider. Its
// password is shown on the login page: these accounts exist only for the demo.
type DemoUser struct {
	Username string   // login name and preferred_username; required, unique
	Password string   // shown on the login page; required
	Subject  string   // ID token "sub"; empty means Username
	Email    string   // required; sent with email_verified=true
	Name     string   // display name; empty means Username
	Groups   []string // IdP groups, sent as the "groups" claim
	About    string   // one line for the login page, e.g. "owns petstore (team-c)"
}

func (u DemoUser) subject() string {
	if u.Subject != "" {
		return u.Subject
	}
	return u.Username
}

func (u DemoUser) displayName() string {
	if u.Name != "" {
		return u.Name
	}
	return u.Username
}

// DemoClient is a relying party registered at the demo OpenID Provider.
type DemoClient struct {
	ID string // client_id; required, unique
	// Secret is the client secret (HTTP Basic or form post). Empty makes a
	// public client, which must use PKCE.
	Secret string
	// RedirectURIs are the exact redirect_uri values accepted; at least one.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact post_logout_redirect_uri values
	// accepted at the end_session endpoint.
	PostLogoutRedirectURIs []string
}

// DefaultUsers returns the demo's built-in users: alice owns the petstore
// (team-c), bob is in team-a, carol is on the SRE on-call rota.
func DefaultUsers() []DemoUser {
	return []DemoUser{
		{
			Username: "alice",
			Password: "alice-demo",
			Email:    "alice@example.com",
			Name:     "Alice Anders",
			Groups:   []string{"team-c"},
			About:    "owns petstore (team-c)",
		},
		{
			Username: "bob",
			Password: "bob-demo",
			Email:    "bob@example.com",
			Name:     "Bob Brandt",
			Groups:   []string{"team-a"},
			About:    "team-a (owns www-artist and wayback, not petstore)",
		},
		{
			Username: "carol",
			Password: "carol-demo",
			Email:    "carol@example.com",
			Name:     "Carol Chen",
			Groups:   []string{"sre-oncall"},
			About:    "SRE on call (sre-oncall)",
		},
	}
}
