package processors

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"

	"github.com/ridestream/ridestream/internal/kafka"
	"github.com/ridestream/ridestream/internal/pipeline"
)

// ResetPlan is what a reset deletes.
type ResetPlan struct {
	Groups []string
	Topics []string
}

// Plan lists the pipeline's consumer groups (the sink's too: a sink still
// running would land the old pipeline's rows beside the replay's) and topics
// that exist now, its record topic included. The input topic is never part of it.
func Plan(admin sarama.ClusterAdmin, n pipeline.Names) (ResetPlan, error) {
	var plan ResetPlan
	topics, err := admin.ListTopics()
	if err != nil {
		return plan, fmt.Errorf("list topics: %w", err)
	}
	for _, t := range append(n.Topics(), n.Pipeline) {
		if _, ok := topics[t]; ok {
			plan.Topics = append(plan.Topics, t)
		}
	}
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		return plan, fmt.Errorf("list consumer groups: %w", err)
	}
	for _, g := range n.Groups() {
		if _, ok := groups[g]; ok {
			plan.Groups = append(plan.Groups, g)
		}
	}
	return plan, nil
}

// ErrGroupActive reports a consumer group that still has members.
type ErrGroupActive struct{ Group string }

func (e *ErrGroupActive) Error() string {
	return fmt.Sprintf("consumer group %s has active members: stop the pipeline's processors and sinks first (or --force)", e.Group)
}

// Reset deletes the plan's groups and topics and waits until the topics are
// gone so they can be created afresh. A group with members is refused unless
// force; a static member of a stopped processor or sink stays registered until its
// session times out, so Reset first waits up to wait for members to go.
func Reset(conn kafka.Conn, plan ResetPlan, force bool, wait time.Duration) error {
	admin, err := conn.NewAdmin("ridestream-reset")
	if err != nil {
		return err
	}
	defer admin.Close()
	for until := time.Now().Add(wait); len(plan.Groups) > 0 && !force; time.Sleep(500 * time.Millisecond) {
		desc, err := admin.DescribeConsumerGroups(plan.Groups)
		if err != nil {
			return fmt.Errorf("describe consumer groups: %w", err)
		}
		var active error
		for _, d := range desc {
			if len(d.Members) > 0 {
				active = &ErrGroupActive{Group: d.GroupId}
			}
		}
		if active == nil {
			break
		}
		if time.Now().After(until) {
			return active
		}
	}
	for _, g := range plan.Groups {
		if err := admin.DeleteConsumerGroup(g); err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
			return fmt.Errorf("delete consumer group %s: %w", g, err)
		}
	}
	for _, t := range plan.Topics {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", t, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		topics, err := admin.ListTopics()
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		left := slices.DeleteFunc(slices.Clone(plan.Topics), func(t string) bool { _, ok := topics[t]; return !ok })
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics still present 60s after deletion: %v", left)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
