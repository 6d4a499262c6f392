package pipeline

// Names are a pipeline's topics and consumer groups, all derived from its
// prefix (and the input topic). docs/design.md says what each one holds.
type Names struct {
	// Input is the rides topic; never created or deleted by ridestream
	// (except by `generate` and the demo).
	Input string
	// Pipeline holds the pipeline's record: its Spec.
	Pipeline string
	// Clock, Watermark and Windows are the internal streams; ClockTable,
	// WatermarkTable and WindowsTable the goka changelogs of the clock,
	// watermark and window stages.
	Clock, ClockTable, Watermark, WatermarkTable, Windows, WindowsTable string
	// Finals, Late and Rejected are the outputs.
	Finals, Late, Rejected string
	// Consumer groups of the three processor stages and of the sink's raw
	// input and finals.
	RouteGroup, ClockGroup, WatermarkGroup, WindowsGroup string
	SinkGroup, SinkFinalsGroup                           string
}

// PipelineTopic is the name of the record topic of the pipeline prefix.
func PipelineTopic(prefix string) string { return prefix + "-pipeline" }

// Names derives the pipeline's names from its prefix and input topic.
func (s Spec) Names() Names {
	p := s.Prefix
	return Names{
		Input:           s.Input,
		Pipeline:        PipelineTopic(p),
		Clock:           p + "-clock",
		ClockTable:      p + "-clock-table",
		Watermark:       p + "-watermark",
		WatermarkTable:  p + "-watermark-table",
		Windows:         p + "-windows",
		WindowsTable:    p + "-windows-table",
		Finals:          p + "-finals",
		Late:            p + "-late",
		Rejected:        p + "-rejected",
		RouteGroup:      p + "-route",
		ClockGroup:      p + "-clock",
		WatermarkGroup:  p + "-watermark",
		WindowsGroup:    p + "-windows",
		SinkGroup:       p + "-sink",
		SinkFinalsGroup: p + "-sink-finals",
	}
}

// Topics are the topics the processors create (the record topic apart).
func (n Names) Topics() []string {
	return []string{n.Clock, n.ClockTable, n.Watermark, n.WatermarkTable, n.Windows, n.WindowsTable, n.Finals, n.Late, n.Rejected}
}

// Groups are the pipeline's consumer groups: the processor stages' and the
// sink's.
func (n Names) Groups() []string {
	return []string{n.RouteGroup, n.ClockGroup, n.WatermarkGroup, n.WindowsGroup, n.SinkGroup, n.SinkFinalsGroup}
}
