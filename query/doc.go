// Package query compiles GraphQL subscriptions against an SDL schema into
// plans, and runs a plan over event bodies: derive the NATS topic, filter
// events, and project the selection set onto each event's JSON.
//
// It imports nothing from the rest of the module and nothing that touches
// the network: Schema, Compiler and Plan are pure values over bytes.
//
// # Concurrency
//
// A Schema and a Plan are immutable after construction, and a Compiler
// guards its plan cache with a mutex: all of them are safe for concurrent
// use. Plan.Execute does not allocate on the common path; it appends to the
// caller's buffer, so one encoded result can be shared by every subscriber of
// a plan.
//
// # Compile order
//
// Compile does the cheap, bounded checks first, so that hostile documents
// are refused before the costly steps (gqlparser's validator needs seconds
// on some small documents):
//
//  1. size: len(Query)+len(Variables) <= Options.MaxQueryBytes
//     (QUERY_TOO_LARGE);
//  2. parse with Options.MaxTokens as the token limit (GRAPHQL_PARSE_FAILED,
//     or QUERY_TOO_LARGE for the token limit);
//  3. pick the operation: it must be a subscription (GRAPHQL_VALIDATION_FAILED);
//  4. walk every operation and fragment of the parsed document with a fixed
//     visit budget (4*MaxComplexity+100 selections after fragment expansion):
//     depth, complexity, fragment nesting (at most 32) and fragment cycles
//     (QUERY_TOO_COMPLEX, or GRAPHQL_VALIDATION_FAILED for a cycle), and
//     the operands of each subscription field's where argument, variables
//     included (FILTER_TOO_COMPLEX);
//  5. full validation by gqlparser (GRAPHQL_VALIDATION_FAILED);
//  6. variable coercion (GRAPHQL_VALIDATION_FAILED);
//  7. field guards: every selected field marked @requires(role:) or
//     @requires(claim:, value:) must be allowed by Request.Claims
//     (FORBIDDEN; the message never names the missing role or claim);
//  8. the plan: exactly one root field after @skip/@include, the topic
//     (FORBIDDEN for a missing claim), the filter (FILTER_TOO_DEEP,
//     FILTER_TOO_COMPLEX, GRAPHQL_VALIDATION_FAILED) and the projection.
//
// # Complexity and depth
//
// Depth is the deepest field nesting, the subscription field being depth 1;
// fragments add no depth. The complexity score sums, over every selected
// field after fragment expansion (aliases and __typename included, @skip and
// @include ignored), 10^n where n is the number of list-typed fields
// enclosing it, plus 1 per operand of the subscription field's where filter
// (see Filters), as a filter costs work on every event. For example
//
//	messageAdded(room: "r1") { id text tags author { id name } }
//
// scores 7: six fields and the root, none under a list. A field under one
// list field scores 10, under two lists 100. Adding
// where: {text: {contains: "a"}, id: {in: ["1", "2"]}} adds 3.
//
// # Topics
//
// A subscription field's @topic(name: "chat.{room}") pattern derives the
// topic; without the directive the topic is the field name. {arg} takes the
// argument's value (strings as they are, numbers and booleans as JSON
// text) and {claims.x} the claim x of Request.Claims (a non-empty string or
// a number; otherwise FORBIDDEN). Every substituted value goes through
// EscapeToken: bytes in [A-Za-z0-9_-] pass through, every other byte
// becomes %XX (uppercase hex), and the empty string becomes "%". A value can
// therefore never add a token, a wildcard or whitespace to the subject, and
// two different values never share a topic. A topic over 1024 bytes is
// refused.
//
// # Filters
//
// Every argument that the topic does not use, other than where, is an
// equality filter on the event's top-level field of the same name, compared
// as the argument's schema type says (an ID "7" matches "7" and 7). An
// omitted or null argument filters nothing. where takes the filter
// language: the input object's fields named eq, neq, gt, gte, lt, lte, in,
// nin, contains, startsWith and isNull are operators, and, or and not are
// combinators, and any other field names a field of the event, nested
// one level down. A null operator sets no condition. On an absent or null
// value only isNull, neq and nin can match (neq and nin do); a value of the
// wrong JSON kind matches no operator. Filter depth counts the nesting of
// combinators and field paths: {text: {eq: "x"}} has depth 1, and depth over
// Options.MaxFilterDepth is refused with FILTER_TOO_DEEP.
//
// A filter's operands are what it can compare on each event: every operator
// with a non-null value counts 1, except in and nin, which count one per
// list item (an empty list counts 1), wherever they nest under and, or, not
// and field paths. More than Options.MaxFilterOperands is refused with
// FILTER_TOO_COMPLEX. The count is made on the parsed document and the
// variables before validation, and stops at the limit. Operand strings are
// not bounded apart from the request size: contains and startsWith cost at
// most the length of the event's string per operand (a longer operand fails
// at once), so the cost of a filter per event is bounded by its operand
// count times the event size.
package query
