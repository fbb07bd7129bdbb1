//go:build linux

package loadgen

import (
	"math/rand/v2"
	"strings"
)

// The event body's text field: PayloadX pads it with 'x' (the default:
// sizes are exact and nothing in it looks like anything the readers
// search for, but a 512-byte body deflates about 7 to 1 on its own, and
// further against the last, which no real message does); PayloadText fills it with chat-like English instead, for
// measuring compression.
const (
	PayloadX    = "x"
	PayloadText = "text"
)

// textWords is the vocabulary of PayloadText, most frequent first (the
// draw is Zipf-distributed over this order, as word use is). It holds
// letters and apostrophes only: nothing a JSON string must escape, and
// no key the readers look for ("dropped" with its quotes).
var textWords = strings.Fields(`
the to and a of I you it is in that for on we this be have not with are
was but just so can do at if me my will what all they from one get like
about your would there out up now know no think need time should when has
see how been then our more today good going here an some also work make
any did want it's them which by back still new really don't could as or
people thanks why meeting tomorrow yes ok right week team look call after
build test fix release deploy change review merge branch server client
issue ticket update message latency queue node cluster error log config
before first last next other into over only very well much even because
where something anything nothing everyone someone please sorry great sure
maybe probably already again never always every morning afternoon night
lunch coffee question answer problem idea plan doc link file page chart
numbers data run runs running ran wait waiting send sent read write check
done doing day days minute minutes hour hours thing things way long short
small big fast slow old sure okay cool nice bad wrong help let's we're
i'll you're that's there's can't didn't isn't won't he she his her him
us who how's were had than these those many most few same different
home office remote online offline customer user users product feature
version bug bugs crash memory disk network load traffic alert alerts page
`)

// textCorpus returns at least n bytes of sentences drawn from textWords
// (always the same: the generator is seeded), so that each event can
// take a different window of it.
func textCorpus(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 2, uint64(len(textWords)-1))
	var b strings.Builder
	b.Grow(n + 128)
	for b.Len() < n {
		words := 4 + r.IntN(14)
		for i := range words {
			w := textWords[z.Uint64()]
			if i == 0 {
				b.WriteString(strings.ToUpper(w[:1]))
				w = w[1:]
			} else if r.IntN(12) == 0 {
				b.WriteString(", ")
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
		}
		b.WriteString([]string{". ", ". ", ". ", "? ", "! "}[r.IntN(5)])
	}
	return b.String()
}

// textAt returns the n bytes of corpus that event seq uses: a window at
// a pseudo-random offset, so consecutive events differ everywhere.
func textAt(corpus string, seq uint64, n int) string {
	if n <= 0 {
		return ""
	}
	off := (seq * 0x9E3779B97F4A7C15 >> 11) % uint64(len(corpus)-n+1)
	return corpus[off : off+uint64(n)]
}
