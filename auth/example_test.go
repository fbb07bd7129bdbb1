package auth_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
)

// A Verifier checks a token and returns the connection's identity: the
// tenant its subjects are confined to, the user, the roles.
func Example() {
	const secret = "0123456789abcdef0123456789abcdef"
	v, err := auth.New(auth.Config{HS256Secret: secret, Audience: "fraiseql"}, nil)
	if err != nil {
		panic(err)
	}
	defer v.Close()

	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tenant": "acme", "sub": "alice", "roles": []string{"admin"},
		"aud": "fraiseql", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))

	id, err := v.Verify(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(id.Tenant, id.User, id.Roles)

	_, err = v.Verify(token + "x")
	var ae *auth.Error
	fmt.Println(errors.As(err, &ae))
	// Output:
	// acme alice [admin]
	// true
}

// TokenFromInit finds the token in a connection_init payload, in any of
// the forms clients send.
func ExampleTokenFromInit() {
	for _, p := range []string{
		`{"token":"t1"}`,
		`{"authToken":"t2"}`,
		`{"Authorization":"Bearer t3"}`,
		`{"headers":{"Authorization":"Bearer t4"}}`,
	} {
		fmt.Println(auth.TokenFromInit(json.RawMessage(p)))
	}
	// Output:
	// t1
	// t2
	// t3
	// t4
}
