package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenFromInit(t *testing.T) {
	cases := []struct {
		name, payload, want string
	}{
		{"Authorization", `{"Authorization": "Bearer abc.def.ghi"}`, "abc.def.ghi"},
		{"authorization", `{"authorization": "Bearer abc"}`, "abc"},
		{"other case", `{"AUTHORIZATION": "bearer abc"}`, "abc"},
		{"scheme case and spaces", `{"Authorization": "  BEARER   abc  "}`, "abc"},
		{"token", `{"token": "abc"}`, "abc"},
		{"token with Bearer", `{"token": "Bearer abc"}`, "abc"},
		{"authToken (Apollo)", `{"authToken": "abc"}`, "abc"},
		{"authToken with Bearer", `{"authToken": "Bearer abc"}`, "abc"},
		{"token before authToken", `{"authToken": "a", "token": "t"}`, "t"},
		{"authToken before headers", `{"authToken": "a", "headers": {"Authorization": "Bearer h"}}`, "a"},
		{"headers", `{"headers": {"Authorization": "Bearer abc"}}`, "abc"},
		{"headers lowercase", `{"headers": {"authorization": "Bearer abc"}}`, "abc"},
		{"Authorization before token", `{"token": "t", "Authorization": "Bearer a"}`, "a"},
		{"token before headers", `{"token": "t", "headers": {"Authorization": "Bearer h"}}`, "t"},
		{"exact key first", `{"AUTHORIZATION": "Bearer x", "Authorization": "Bearer y"}`, "y"},
		{"Basic is not a token", `{"Authorization": "Basic dXNlcjpwdw=="}`, ""},
		{"bare Authorization is not a token", `{"Authorization": "abc"}`, ""},
		{"Bearer without token", `{"Authorization": "Bearer "}`, ""},
		{"not a string", `{"token": 42}`, ""},
		{"headers not an object", `{"headers": "Bearer abc"}`, ""},
		{"empty object", `{}`, ""},
		{"null", `null`, ""},
		{"nothing", ``, ""},
		{"array", `["Bearer abc"]`, ""},
		{"invalid JSON", `{"token": "abc"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := TokenFromInit(json.RawMessage(tc.payload)); got != tc.want {
				t.Errorf("TokenFromInit(%s) = %q, want %q", tc.payload, got, tc.want)
			}
		})
	}
}

func TestTokenFromRequest(t *testing.T) {
	withCookie := newTestVerifier(t, Config{HS256Secret: secret, Cookie: "fraiseql_token"})
	noCookie := newTestVerifier(t, Config{HS256Secret: secret})
	cases := []struct {
		name   string
		v      *Verifier
		header string
		cookie *http.Cookie
		want   string
	}{
		{"header", noCookie, "Bearer abc", nil, "abc"},
		{"header scheme case", noCookie, "bearer abc", nil, "abc"},
		{"Basic header", noCookie, "Basic abc", nil, ""},
		{"nothing", withCookie, "", nil, ""},
		{"cookie", withCookie, "", &http.Cookie{Name: "fraiseql_token", Value: "ck"}, "ck"},
		{"header wins over cookie", withCookie, "Bearer h", &http.Cookie{Name: "fraiseql_token", Value: "ck"}, "h"},
		{"other cookie", withCookie, "", &http.Cookie{Name: "session", Value: "ck"}, ""},
		{"cookie not configured", noCookie, "", &http.Cookie{Name: "fraiseql_token", Value: "ck"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if tc.cookie != nil {
				r.AddCookie(tc.cookie)
			}
			if got := tc.v.TokenFromRequest(r); got != tc.want {
				t.Errorf("TokenFromRequest = %q, want %q", got, tc.want)
			}
		})
	}
}
