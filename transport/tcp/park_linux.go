package tcp

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// canPark: Linux has epoll.
const canPark = true

// stopKey is the epoll key of the parker's eventfd; conns count from 1.
const stopKey = 0

// parkEvents is how many events one epoll_wait takes.
const parkEvents = 128

// parker waits in epoll for parked sockets. Its fields and the conns'
// park fields are guarded by the Loop's pmu.
type parker struct {
	l      *Loop
	epfd   int
	evfd   int              // written once by stopParker
	next   uint64           // last key handed out
	parked map[uint64]*conn // by key; a stale event finds nothing
	parks  uint64
	wakes  uint64
}

// park registers c's socket with the parker, started at the first park.
// It reports false if c cannot park; c's reader then keeps reading.
func (l *Loop) park(c *conn, rc syscall.RawConn) bool {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if c.noPark || l.parkStopped {
		return false
	}
	if l.pk == nil && !l.startParkerLocked() {
		l.parkStopped = true // no retry (and no log line) per idle conn
		return false
	}
	p := l.pk
	key := p.next + 1
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setKey(&ev, key)
	var cerr error
	// Inside Control the fd cannot be closed under us.
	err := rc.Control(func(fd uintptr) {
		if c.epollAdded {
			// A oneshot registration stays, disabled, after its event.
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
			return
		}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		return false
	}
	p.next = key
	c.epollAdded = true
	c.parkID = key
	p.parked[key] = c
	p.parks++
	return true
}

// startParkerLocked creates the epoll set and its goroutine.
func (l *Loop) startParkerLocked() bool {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		l.log.Warn("transport: cannot park idle connections", "err", err)
		return false
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err == nil {
		ev := unix.EpollEvent{Events: unix.EPOLLIN}
		setKey(&ev, stopKey)
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev)
		if err != nil {
			unix.Close(evfd)
		}
	}
	if err != nil {
		unix.Close(epfd)
		l.log.Warn("transport: cannot park idle connections", "err", err)
		return false
	}
	l.pk = &parker{l: l, epfd: epfd, evfd: evfd, parked: make(map[uint64]*conn)}
	l.wg.Add(1)
	go l.pk.run()
	return true
}

// stopParker ends the parker goroutine; Loop.Close waits for it.
func (l *Loop) stopParker() {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if l.parkStopped {
		return // already stopped, or the parker failed (its fds are closed)
	}
	l.parkStopped = true
	p := l.pk
	if p == nil {
		return
	}
	var one [8]byte
	one[0] = 1 // native endian matters not: any non-zero count wakes epoll
	unix.Write(p.evfd, one[:])
}

// dropLocked forgets parked c and takes its socket out of the epoll set.
func (p *parker) dropLocked(c *conn) {
	delete(p.parked, c.parkID)
	c.parkID = 0
	if p.l.parkStopped {
		return // no more epoll_ctl: the set is closing
	}
	if rc := rawConnOf(c.nc); rc != nil {
		rc.Control(func(fd uintptr) {
			unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
		c.epollAdded = false
	}
}

func (p *parker) statsLocked() ParkStats {
	return ParkStats{Parked: len(p.parked), Parks: p.parks, Wakes: p.wakes}
}

// run starts a reader for every parked socket that becomes readable or
// hangs up, until stopParker.
func (p *parker) run() {
	l := p.l
	defer l.wg.Done()
	events := make([]unix.EpollEvent, parkEvents)
	wake := make([]*conn, 0, parkEvents)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		stop := err != nil
		l.pmu.Lock()
		if err != nil {
			// Cannot wait any more: wake everyone, park no one.
			l.log.Error("transport: parker failed; idle connections keep their readers", "err", err)
			l.parkStopped = true
			// sorted: every parked conn wakes, in any order.
			for key, c := range p.parked {
				delete(p.parked, key)
				c.parkID = 0
				wake = append(wake, c)
			}
		}
		for i := range n {
			key := keyOf(&events[i])
			if key == stopKey {
				stop = true
				continue
			}
			c, ok := p.parked[key]
			if !ok {
				continue // dropped while its event was on the way
			}
			delete(p.parked, key)
			c.parkID = 0
			p.wakes++
			wake = append(wake, c)
		}
		// Counted while this goroutine's own count holds Close's Wait.
		l.wg.Add(len(wake))
		l.pmu.Unlock()
		for i, c := range wake {
			wake[i] = nil
			go c.resume()
		}
		wake = wake[:0]
		if stop {
			unix.Close(p.epfd)
			unix.Close(p.evfd)
			return
		}
	}
}

// resume is a woken conn's fresh reader.
func (c *conn) resume() {
	defer c.l.wg.Done()
	c.readLoop()
}

// setKey and keyOf keep a 64-bit key in the event's data (Fd, Pad).
func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd = int32(uint32(key))
	ev.Pad = int32(uint32(key >> 32))
}

func keyOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
