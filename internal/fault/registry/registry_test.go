package registry

import "testing"

func TestRegistriesAreIndependent(t *testing.T) {
	var off *Points
	if _, hit := off.Hit("x"); hit {
		t.Fatal("a nil registry hit a failpoint")
	}
	a, b := New(), New()
	if err := a.Enable("relay/x", "return(true)"); err != nil {
		t.Fatal(err)
	}
	if v, hit := a.Hit("relay/x"); !hit || v != true {
		t.Fatalf("enabled point: hit=%v value=%v, want true true", hit, v)
	}
	if _, hit := b.Hit("relay/x"); hit {
		t.Fatal("a point enabled in one registry fired in another")
	}
	if err := a.Disable("relay/x"); err != nil {
		t.Fatal(err)
	}
	if _, hit := a.Hit("relay/x"); hit {
		t.Fatal("disabled point still fires")
	}
	if err := a.Enable("relay/y", "2*return(1)"); err != nil {
		t.Fatal(err)
	}
	hits := 0
	for range 5 {
		if _, hit := a.Hit("relay/y"); hit {
			hits++
		}
	}
	if hits != 2 {
		t.Fatalf("2*return fired %d times in 5, want 2", hits)
	}
}
