// Package icontroltest is an in-memory fake of the BIG-IP iControl REST API
// (token login, LTM iRules, internal data groups, virtual servers, pools and
// /mgmt/tm/transaction) served over TLS by httptest, with knobs to expire
// tokens, force 409/500/503 answers and count write calls. It exists for the
// tests of package bigip/icontrol and of the backgate command.
package icontroltest
