package policy

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input keys, allocated once.
var (
	kUser        = ast.StringTerm("user")
	kRequest     = ast.StringTerm("request")
	kRoute       = ast.StringTerm("route")
	kTime        = ast.StringTerm("time")
	kSub         = ast.StringTerm("sub")
	kIss         = ast.StringTerm("iss")
	kEmail       = ast.StringTerm("email")
	kName        = ast.StringTerm("name")
	kUsername    = ast.StringTerm("username")
	kGroups      = ast.StringTerm("groups")
	kRef         = ast.StringTerm("ref")
	kMethod      = ast.StringTerm("method")
	kHost        = ast.StringTerm("host")
	kPath        = ast.StringTerm("path")
	kPathPrefix  = ast.StringTerm("path_prefix")
	kService     = ast.StringTerm("service")
	kEnvironment = ast.StringTerm("environment")
	emptyString  = ast.StringTerm("")
)

func str(s string) *ast.Term {
	if s == "" {
		return emptyString
	}
	return ast.StringTerm(s)
}

// buildInput builds the policy input directly as an AST value (no JSON round
// trip). Its shape is rego/schemas/input.json.
func buildInput(in *Input, userRef string) ast.Value {
	groups := make([]*ast.Term, len(in.User.Groups))
	for i, g := range in.User.Groups {
		groups[i] = str(g)
	}
	user := ast.NewObjectWithCapacity(7)
	user.Insert(kSub, str(in.User.Subject))
	user.Insert(kIss, str(in.User.Issuer))
	user.Insert(kEmail, str(in.User.Email))
	user.Insert(kName, str(in.User.Name))
	user.Insert(kUsername, str(in.User.Username))
	user.Insert(kGroups, ast.ArrayTerm(groups...))
	user.Insert(kRef, str(userRef))

	req := ast.NewObjectWithCapacity(3)
	req.Insert(kMethod, str(in.Request.Method))
	req.Insert(kHost, str(in.Request.Host))
	req.Insert(kPath, str(in.Request.Path))

	route := ast.NewObjectWithCapacity(5)
	route.Insert(kName, str(in.Route.Name))
	route.Insert(kHost, str(in.Route.Host))
	route.Insert(kPathPrefix, str(in.Route.PathPrefix))
	route.Insert(kService, str(strings.ToLower(in.Route.Service)))
	route.Insert(kEnvironment, str(strings.ToLower(in.Route.Environment)))

	root := ast.NewObjectWithCapacity(4)
	root.Insert(kUser, ast.NewTerm(user))
	root.Insert(kRequest, ast.NewTerm(req))
	root.Insert(kRoute, ast.NewTerm(route))
	root.Insert(kTime, ast.NumberTerm(json.Number(strconv.FormatInt(in.Time.UnixNano(), 10))))
	return root
}
