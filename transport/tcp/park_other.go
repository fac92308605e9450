//go:build !linux

package tcp

import "syscall"

// canPark is false: without epoll a connection keeps its reader.
const canPark = false

type parker struct{}

func (l *Loop) park(*conn, syscall.RawConn) bool { return false }
func (l *Loop) stopParker()                      {}
func (p *parker) dropLocked(*conn)               {}
func (p *parker) statsLocked() ParkStats         { return ParkStats{} }
