package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestChart: the chart is a PNG with one bar per pipeline in each panel,
// each as long as its value says (bars measured in the image's pixels).
func TestChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.png")
	bars := []chartBar{{"ridestream end to end", 54000, 30}, {"Kafka Streams", 37000, 45}, {"Flink", 27000, 60}, {"Python consumer", 1800, 0}}
	if err := writeChart(path, "rides per second and CPU per ride", bars); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, fill color.RGBA, want []float64) {
		got := barLengths(img, fill)
		if len(got) != len(want) {
			t.Fatalf("%s panel: %d bars %v, want %d", name, len(got), got, len(want))
		}
		for i := range want {
			// Lengths relative to the first bar, within a pixel or two.
			if r := float64(got[i]) / float64(got[0]); math.Abs(r-want[i]/want[0]) > 0.02 {
				t.Errorf("%s panel, bar %d: %d px, %.3f of the first; want %.3f", name, i, got[i], r, want[i]/want[0])
			}
		}
	}
	check("rate", color.RGBA{R: 37, G: 99, B: 235, A: 255}, []float64{54000, 37000, 27000, 1800})
	check("CPU", color.RGBA{R: 217, G: 119, B: 6, A: 255}, []float64{30, 45, 60}) // no bar for 0
}

// barLengths are the lengths in pixels of the horizontal bars of colour
// fill, top to bottom: a bar is a band of consecutive rows holding a run of
// that colour.
func barLengths(img image.Image, fill color.RGBA) []int {
	var bars []int
	in := false
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		n := 0
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == fill {
				n++
			}
		}
		switch {
		case n > 0 && !in:
			bars, in = append(bars, n), true
		case n > 0:
			bars[len(bars)-1] = max(bars[len(bars)-1], n)
		default:
			in = false
		}
	}
	return bars
}
