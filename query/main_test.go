package query

import (
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// statsSDL extends the demo schema with a field whose where filter has
// Int and Float operators.
const statsSDL = `
extend type Subscription {
  metricsWhere(where: MetricFilter): Metric
  orders(status: String, minTotal: Float, where: MetricFilter): [Order] @topic(name: "orders.all")
}
interface Node { id: ID! }
type Robot implements Node { id: ID! model: String }
type Human implements Node { id: ID! name: String }
union Thing = Robot | Human
extend type Subscription {
  nodes: Node
  things: [Thing]
  messageById(id: ID, text: String, active: Boolean, n: Int): Message @topic(name: "chat.all")
  feed(channel: String, flag: Boolean, n: Int, x: Float): Message @topic(name: "feed.{channel}.{flag}.{n}.{x}")
}
`

var (
	chatOnce sync.Once
	chatSDL  string
	chat     *Schema
)

// demoSchema loads testdata/chat.graphql plus statsSDL.
func demoSchema(t testing.TB) *Schema {
	t.Helper()
	chatOnce.Do(func() {
		b, err := os.ReadFile("testdata/chat.graphql")
		if err != nil {
			panic(err)
		}
		chatSDL = string(b)
		chat, err = LoadSchema("chat.graphql", chatSDL+statsSDL)
		if err != nil {
			panic(err)
		}
	})
	return chat
}

func newTestCompiler(t testing.TB, opts Options) *Compiler {
	t.Helper()
	return NewCompiler(demoSchema(t), opts, 0)
}

// errCode returns the code of the first error of a Compile error.
func errCode(err error) string {
	var list gqlerror.List
	if !errors.As(err, &list) || len(list) == 0 {
		return ""
	}
	c, _ := list[0].Extensions["code"].(string)
	return c
}

func mustCompile(t testing.TB, c *Compiler, req Request) *Plan {
	t.Helper()
	p, err := c.Compile(req)
	if err != nil {
		t.Fatalf("Compile(%q): %v", req.Query, err)
	}
	return p
}

func vars(t testing.TB, v map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
