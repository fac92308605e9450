// Package registry implements fault.Set with github.com/pingcap/failpoint,
// for the simulator and tests. Cores see only the fault.Set interface, so
// they do not link pingcap/failpoint (which brings net/http).
//
// Failpoints in pingcap/failpoint are process-global by default; simulations
// run side by side, so every core is handed its own registry instead. A nil
// *Points is the release setting: each check is one nil test.
//
// Probability terms ("50%return") draw from a wall-clock-seeded source and
// would break replay; callers that need chance enable and disable points from
// their own seeded source and use only deterministic terms ("return", "3*return").
package registry

import (
	"github.com/pingcap/failpoint"

	"github.com/cosnim/relays/internal/fault"
)

var _ fault.Set = (*Points)(nil)

// Points is one core's set of failpoints.
type Points struct {
	fps failpoint.Failpoints
}

// New returns an empty registry.
func New() *Points { return &Points{} }

// Enable turns on the named point with failpoint terms such as "return(true)".
func (p *Points) Enable(name, terms string) error { return p.fps.Enable(name, terms) }

// Disable turns off the named point.
func (p *Points) Disable(name string) error { return p.fps.Disable(name) }

// Hit reports whether the named point is on, and its value.
func (p *Points) Hit(name string) (any, bool) {
	if p == nil {
		return nil, false
	}
	v, err := p.fps.Eval(name)
	if err != nil {
		return nil, false
	}
	return v, true
}
