package main

import (
	"fmt"
	"image/color"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartBar is one bar of the bench chart: a measured rate, and the CPU it
// cost per 1M rides (0: not measured).
type chartBar struct {
	label     string
	rate      float64 // rides (rows) per second
	cpuPerMil float64 // CPU-seconds per 1M rides
}

// writeChart draws the bench's rates and CPU per ride side by side as an
// PNG at path: two panels, one bar per measured pipeline in each.
func writeChart(path, title string, bars []chartBar) error {
	if len(bars) == 0 {
		return nil
	}
	// Horizontal bars, the first on top.
	bars = slices.Clone(bars)
	slices.Reverse(bars)
	labels := make([]string, len(bars))
	rates, cpus := make(plotter.Values, len(bars)), make(plotter.Values, len(bars))
	for i, b := range bars {
		labels[i], rates[i], cpus[i] = b.label, b.rate/1000, b.cpuPerMil
	}
	panel := func(ylabel string, vals plotter.Values, fill color.Color) (*plot.Plot, error) {
		p := plot.New()
		p.X.Label.Text = ylabel
		p.X.Min = 0
		bar, err := plotter.NewBarChart(vals, vg.Points(16))
		if err != nil {
			return nil, err
		}
		bar.Horizontal, bar.Color, bar.LineStyle.Width = true, fill, 0
		grid := plotter.NewGrid()
		grid.Horizontal.Width = 0
		p.Add(grid, bar)
		p.NominalY(labels...)
		return p, nil
	}
	top, err := panel("thousand rides (rows) per second", rates, color.RGBA{R: 37, G: 99, B: 235, A: 255})
	if err != nil {
		return err
	}
	top.Title.Text = title
	bottom, err := panel("CPU-seconds per 1M rides (the pipeline's own processes)", cpus, color.RGBA{R: 217, G: 119, B: 6, A: 255})
	if err != nil {
		return err
	}
	w, h := 9*vg.Inch, vg.Length(2*len(bars))*vg.Points(26)+2*vg.Inch
	// PNG: the text is drawn with the fonts its layout was measured with
	// (an SVG's text is set by the viewer in whatever font it has).
	canvas := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
