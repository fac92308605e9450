package wire

// BufCapForTest reports the capacity of the Reader's partial-frame buffer.
func (r *Reader) BufCapForTest() int { return cap(r.buf) }
