package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// InstanceGuard keeps two live processes from sharing one static group
// membership id (--instance-id, a copied environment). The group coordinator
// fences the older member whenever a newer one joins with its id; left
// alone, the two fence each other back and forth for ever, since each
// rejoins after being fenced.
//
// The guard tells the newcomer from the incumbent, and settles a tie:
//   - A process that found a member with its id registered in one of its
//     groups when it started (a live duplicate, or its own previous run that
//     was killed and has not timed out yet) and is then fenced within
//     NewcomerWindow is the newcomer: another live process holds the id, and
//     this one stops. A process killed and restarted is never fenced (the
//     dead member fences no one), so it keeps its partitions as static
//     membership intends; the incumbent of a duplicate found no such member
//     when it started, so when it is fenced it rejoins, which fences the
//     newcomer, which stops.
//   - Two processes started at the same moment both find no member. Each
//     fencing of one is answered by its rejoin, which fences the other; the
//     one fenced a second time within NewcomerWindow of its start stops, and
//     the other keeps the id. Only the fencings in one group (the arbiter:
//     the first group the process consumes in, the same for duplicates that
//     run the same --stages) count for this, so the two cannot each lose in
//     a different group and both stop. A process running for longer than
//     NewcomerWindow never stops: a duplicate restarted over and over by a
//     supervisor is the newcomer every time.
type InstanceGuard struct {
	id      string
	started time.Time
	claimed bool // a member with this id was registered when the process started

	mu      sync.Mutex
	arbiter string      // the group whose fencings count ("": any)
	fenced  []time.Time // fencings in the arbiter within NewcomerWindow

	once sync.Once
	done chan struct{}
	err  error
}

// NewcomerWindow is how long after its start a process that found its id
// registered stops when fenced, and the window within which a second
// fencing stops a process that found none.
const NewcomerWindow = 2 * time.Minute

// NewInstanceGuard looks, in each of groups, for a member registered with
// the instance id that group uses (instances[group]). An empty map (no
// --instance-id) gives a guard that never fires.
func NewInstanceGuard(admin sarama.ClusterAdmin, id string, instances map[string]string) (*InstanceGuard, error) {
	g := &InstanceGuard{id: id, started: time.Now(), done: make(chan struct{})}
	if len(instances) == 0 {
		return g, nil
	}
	groups := make([]string, 0, len(instances))
	for group := range instances {
		groups = append(groups, group)
	}
	desc, err := admin.DescribeConsumerGroups(groups)
	if err != nil {
		return nil, fmt.Errorf("describe consumer groups %v: %w", groups, err)
	}
	for _, d := range desc {
		for _, m := range d.Members {
			if m.GroupInstanceId != nil && *m.GroupInstanceId == instances[d.GroupId] {
				g.claimed = true
			}
		}
	}
	return g, nil
}

// SetArbiter names the group whose fencings count: the first the process
// consumes in, the same for every duplicate of it.
func (g *InstanceGuard) SetArbiter(group string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.arbiter = group
}

// Observe hears of an error of the consumer group named group of this
// process; a fencing (each reported once) may make the guard fire (see
// InstanceGuard).
func (g *InstanceGuard) Observe(group string, err error) {
	if g == nil || !errors.Is(err, sarama.ErrFencedInstancedId) {
		return
	}
	now := time.Now()
	young := now.Sub(g.started) <= NewcomerWindow
	g.mu.Lock()
	twice := false
	if g.arbiter == "" || group == g.arbiter {
		g.fenced = append(slices.DeleteFunc(g.fenced, func(t time.Time) bool { return now.Sub(t) > NewcomerWindow }), now)
		twice = len(g.fenced) >= 2
	}
	g.mu.Unlock()
	var why string
	switch {
	case g.claimed && young:
		why = fmt.Sprintf("its group membership was already registered when this process started, and the group coordinator fenced this process %v later",
			now.Sub(g.started).Round(time.Second))
	case twice && young:
		why = fmt.Sprintf("the group coordinator fenced this process twice within %v: two processes with this id keep taking it from each other, and this one gives way",
			NewcomerWindow)
	default:
		return
	}
	g.once.Do(func() {
		g.err = fmt.Errorf("--instance-id %s: another live instance holds this id (%s); give every instance its own --instance-id", g.id, why)
		close(g.done)
	})
}

// Done is closed when the guard fires; Err then says why.
func (g *InstanceGuard) Done() <-chan struct{} { return g.done }

// Err is the reason the guard fired; read it after Done is closed.
func (g *InstanceGuard) Err() error { return g.err }

// Fired is Err when the guard has fired, else nil.
func (g *InstanceGuard) Fired() error {
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}

// Wait returns Err once the guard fires, or nil when ctx ends first (or
// when g is nil).
func (g *InstanceGuard) Wait(ctx context.Context) error {
	if g == nil {
		<-ctx.Done()
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case <-g.done:
		return g.err
	}
}

// GuardedGroup passes a consumer group's errors (Consume's and the Errors
// channel's) to an InstanceGuard. A fenced member can never join again, so
// its fencing is one event however many times it is reported: the guard
// hears of it once.
type GuardedGroup struct {
	sarama.ConsumerGroup
	group  string
	guard  *InstanceGuard
	errs   chan error
	fenced atomic.Bool
}

func (g *GuardedGroup) observe(err error) {
	if errors.Is(err, sarama.ErrFencedInstancedId) && g.fenced.CompareAndSwap(false, true) {
		g.guard.Observe(g.group, err)
	}
}

// NewGuardedGroup wraps cg, the consumer group named group; its config must
// return errors (Consumer.Return.Errors).
func NewGuardedGroup(cg sarama.ConsumerGroup, group string, guard *InstanceGuard) *GuardedGroup {
	g := &GuardedGroup{ConsumerGroup: cg, group: group, guard: guard, errs: make(chan error, 64)}
	go func() {
		defer close(g.errs)
		for err := range cg.Errors() {
			g.observe(err)
			select {
			case g.errs <- err:
			default: // nobody listening now: as sarama itself does
			}
		}
	}()
	return g
}

// Consume implements sarama.ConsumerGroup.
func (g *GuardedGroup) Consume(ctx context.Context, topics []string, handler sarama.ConsumerGroupHandler) error {
	err := g.ConsumerGroup.Consume(ctx, topics, handler)
	g.observe(err)
	return err
}

// Errors implements sarama.ConsumerGroup.
func (g *GuardedGroup) Errors() <-chan error { return g.errs }
