package auth

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// TokenFromInit extracts the token from a connection_init payload, trying
// in turn:
//
//	{"Authorization": "Bearer <token>"}   (or "authorization", any case)
//	{"token": "<token>"}                   (a "Bearer " prefix is dropped)
//	{"authToken": "<token>"}               (Apollo Client's documented key; likewise)
//	{"headers": {"Authorization": "Bearer <token>"}}
//
// It returns "" when none is present. An Authorization value with another
// scheme (Basic, …) is not a token.
func TokenFromInit(payload json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil {
		return ""
	}
	if t := bearer(authorization(m)); t != "" {
		return t
	}
	for _, key := range []string{"token", "authToken"} {
		if t := strings.TrimSpace(jsonString(m[key])); t != "" {
			if b := bearer(t); b != "" {
				return b
			}
			return t
		}
	}
	var h map[string]json.RawMessage
	if json.Unmarshal(m["headers"], &h) == nil {
		return bearer(authorization(h))
	}
	return ""
}

// TokenFromRequest extracts the token from the WebSocket upgrade request:
// the Authorization header's Bearer token, else the value of the cookie
// Config.Cookie names (when set). It returns "" when neither is present.
func (v *Verifier) TokenFromRequest(r *http.Request) string {
	if t := bearer(r.Header.Get("Authorization")); t != "" {
		return t
	}
	if v.cfg.Cookie != "" {
		if c, err := r.Cookie(v.cfg.Cookie); err == nil {
			return strings.TrimSpace(c.Value)
		}
	}
	return ""
}

// authorization returns the string value of m's Authorization key: an exact
// "Authorization" or "authorization" first, else the first key, in sorted
// order, equal to it without regard to case.
func authorization(m map[string]json.RawMessage) string {
	for _, k := range []string{"Authorization", "authorization"} {
		if v, ok := m[k]; ok {
			return jsonString(v)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if strings.EqualFold(k, "authorization") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	return jsonString(m[keys[0]])
}

// bearer returns the token of an "Authorization: Bearer <token>" value
// (scheme in any case, RFC 9110 §11.1), or "".
func bearer(h string) string {
	const scheme = "bearer "
	h = strings.TrimSpace(h)
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
