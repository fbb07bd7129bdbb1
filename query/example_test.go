package query_test

import (
	"encoding/json"
	"fmt"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fraiseql/subscriptions/query"
)

const exampleSDL = `
directive @topic(name: String!) on FIELD_DEFINITION
type Query { health: String }
type Message { id: ID!, room: ID!, text: String!, secret: String }
input StringFilter { eq: String, startsWith: String }
input MessageFilter { text: StringFilter }
type Subscription {
  messageAdded(room: ID!, where: MessageFilter): Message @topic(name: "chat.{room}")
}`

// A subscription compiles once into a Plan: its NATS topic, its filter and
// its projection. Executing the plan on an event's JSON returns the
// payload to send, or ok false when the filter drops the event.
func Example() {
	schema, err := query.LoadSchema("chat.graphql", exampleSDL)
	if err != nil {
		panic(err)
	}
	c := query.NewCompiler(schema, query.Options{}, 0)
	plan, err := c.Compile(query.Request{
		Query:     `subscription($room: ID!) { messageAdded(room: $room, where: {text: {startsWith: "hi"}}) { id text } }`,
		Variables: json.RawMessage(`{"room":"r1"}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("topic:", plan.Topic)
	for _, event := range []string{
		`{"id":"1","room":"r1","text":"hi there","secret":"never sent"}`,
		`{"id":"2","room":"r1","text":"bye"}`,
	} {
		out, ok, err := plan.Execute(nil, []byte(event))
		fmt.Println(string(out), ok, err)
	}
	// Output:
	// topic: chat.r1
	// {"messageAdded":{"id":"1","text":"hi there"}} true <nil>
	//  false <nil>
}

// Errors carry extensions.code, the code a client receives.
func ExampleCompiler_Compile_error() {
	schema, _ := query.LoadSchema("chat.graphql", exampleSDL)
	c := query.NewCompiler(schema, query.Options{}, 0)
	_, err := c.Compile(query.Request{Query: `subscription { messageAdded(room: "r1") { nope } }`})
	for _, e := range err.(gqlerror.List) {
		fmt.Println(e.Extensions["code"], e.Message)
	}
	// Output:
	// GRAPHQL_VALIDATION_FAILED Cannot query field "nope" on type "Message".
}

// EscapeToken makes any argument value one safe NATS subject token: a value
// of ">" cannot subscribe to everything.
func ExampleEscapeToken() {
	fmt.Println(query.EscapeToken("r1"), query.EscapeToken(">"), query.EscapeToken("a.b"))
	// Output: r1 %3E a%2Eb
}
