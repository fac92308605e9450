// Package roster holds the convergent set at the heart of the relays: the
// entries (sealed capsule references) that the instances of a channel know,
// and the reconciliation by which two holders of such sets learn what each
// lacks.
//
// # Role
//
// A client keeps a Set per channel: its roster. A relay keeps a Set per
// channel as a bounded cache (the only user of Remove). Rosters only grow;
// Merge is set union, so it is commutative, associative and idempotent, and
// any order of announcements, deliveries and syncs converges to the same
// set. Entries are sealed with keys derived from the continuum secret
// (seal.go): a relay can store and forward them but neither read nor forge
// them, and the ID of an entry is the SHA-256 of its sealed bytes.
//
// # Reconciliation
//
// A client that (re)connects, or a relay that restarted empty, must catch up
// at a cost that grows with what differs, not with the roster. We use
// range-based set reconciliation over a fixed 16-ary trie of ID prefixes: a
// Node is the set of IDs that start with given nibbles, and its Fingerprint
// is the count of the IDs in it and their sum modulo 2^128. A side sends
// fingerprints of nodes; the other compares with its own. Equal nodes are
// done. A differing node where the answerer holds at most T = 16 IDs is
// answered with that ID list (and resolved by the next message: the peer
// gives what the list lacks and wants what it does not hold); a larger one
// is split into its 16 children. A node where the peer reports a count of
// zero is answered at once with all our entries in it. The exchange starts
// with the root's fingerprint alone (or the whole ID list of a tiny set), so
// equal sets agree after one message of about 25 bytes and an empty reply.
//
// Why this scheme:
//   - Per-origin version vectors (as in anti-entropy between replicas) need
//     every entry to have an origin and a sequence number. Ours do not: an
//     instance also learns capsules by listing storage, several instances
//     discover the same capsule and seal the same entry independently, and
//     relays forget everything at restart. A set of content-addressed IDs
//     has no origins to count, and a fingerprint of a set needs none.
//   - Bloom filters cost bits per element of the whole set on every sync
//     (about 10 bits per entry for 1% false positives: 125 kB for 10^5
//     entries, even when nothing differs) and their false positives silently
//     hide entries, which needs another round to repair. Invertible Bloom
//     lookup tables are proportional to the difference, but their size must
//     be guessed in advance (a strata estimator costs a round and some
//     kilobytes), they fail outright when the guess is short, and they need
//     the IDs hashed into several cells, which is harder to keep exact under
//     Remove in a bounded cache. Range fingerprints are exact, need no
//     estimate, adapt to any difference, cost nothing when sets agree, and
//     are additive, so the Set keeps them up to date as entries come.
//   - IDs are SHA-256 outputs, so the trie is balanced without rebalancing:
//     a node at depth d holds about n/16^d IDs.
//
// The sum is not a cryptographic hash: a member of the channel who wanted to
// could craft entries whose sums cancel and hide them from a sync. Only
// holders of the continuum secret can make entries at all, and they can do
// worse; the sum guards against accidents, not members.
//
// # Cost
//
// Measured in TestSyncCost100k (sealed entries of 80 bytes, 82 on the wire):
// a side missing 10 of 100,000 entries catches up in 6 or 7 messages and
// about 11 kB in both directions together (10.1–10.9 kB of sync messages
// plus the 10 entries), about 135–145 entries' worth; the test asserts
// at most 300 × 82 bytes and 8 messages, and that exactly the 10 missing
// entries are given. Each differing entry costs about 1 kB of fingerprints
// (16 children of ~22 bytes at each of log16(n)-1 levels), so k differences
// in n entries cost about k·350·log16(n/T) bytes over about log16(n)+2
// messages; at 10^6 entries and 10 differences, 14 kB and 7 messages
// (BenchmarkSyncDiff). T and the rule for listing small children (at most
// one ID) were chosen by measurement: from T = 4 to 16 costs differ by 2%,
// larger T costs more bytes for one message less. An empty side catching up
// costs one message each way plus its entries.
//
// # Data structure
//
// A Set keeps its entries in buckets keyed by the first 0 to 5 nibbles of
// the ID, each bucket sorted by ID; there is one bucket at first, and
// buckets split into 16 each (a cut of a sorted array) whenever they would
// average more than 32 entries, so a relay cache of 10^4 entries holds 4,096
// buckets and a roster of 10^6 entries 65,536. A bucket holds 16-byte refs:
// the first 8 bytes of the ID as an integer, which decide almost every
// comparison, and the entry's slot in a paged slab of Entries (the
// slots Remove frees are reused). A search reads a few cache lines of
// a bucket, and inserts and deletes shift words without pointers. Beside
// them, a running fingerprint of every node down to the bucket depth
// (1+16+…+16^depth counters, 24 bytes each) is updated by Add and Remove,
// so the fingerprint of the root and of every split node that sync asks
// about is a lookup, and a deeper node binary-searches and scans part of
// one bucket (a few entries). Membership is a search in one bucket, so
// there is no map beside the buckets: an entry costs its 56-byte Entry and
// a 16-byte ref plus slack, and Entries, sync ID lists and fingerprints
// come out in ID order without sorting, independent of insertion order and
// of Go's map order. The zero Set is empty and allocates its buckets at the
// first Add.
package roster
