namespace Shootdown.Reports;

/// <summary>`shootdown sensitivity --plot`: a tornado chart of one figure, a pair of horizontal bars per constant (the lowered value above the raised one), the largest swing on top; with repeated seeds, the figure's noise band shaded around 0.</summary>
public static class TornadoPlot
{
    /// <summary>Writes the chart of <paramref name="figure"/> to <paramref name="path"/> (.png or .svg). Constants that do not move the figure are left out.</summary>
    public static void Write(FigureSensitivity figure, double delta, string subtitle, string path)
    {
        var rows = figure.Changes.Where(c => c.Swing > 0).ToArray();
        var plt = new ScottPlot.Plot();
        var low = ScottPlot.Colors.SteelBlue;
        var high = ScottPlot.Colors.OrangeRed;
        var bars = new List<ScottPlot.Bar>();
        for (int i = 0; i < rows.Length; i++)
        {
            double y = rows.Length - 1 - i;
            if (rows[i].ChangeLow is { } l)
            {
                bars.Add(new ScottPlot.Bar { Position = y + 0.18, ValueBase = 0, Value = l, FillColor = low, Size = 0.36 });
            }
            if (rows[i].ChangeHigh is { } h)
            {
                bars.Add(new ScottPlot.Bar { Position = y - 0.18, ValueBase = 0, Value = h, FillColor = high, Size = 0.36 });
            }
        }
        if (figure.NoiseBand is { } band && band > 0)
        {
            var span = plt.Add.HorizontalSpan(-band, band);
            span.FillStyle.Color = ScottPlot.Colors.Gray.WithAlpha(0.25);
            span.LineStyle.Width = 0;
            plt.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = $"noise band (±{band:0.##})", FillColor = ScottPlot.Colors.Gray.WithAlpha(0.25) });
        }
        var plot = plt.Add.Bars(bars);
        plot.Horizontal = true;
        plt.Add.VerticalLine(0, 1, ScottPlot.Colors.Black);
        plt.Axes.Left.SetTicks(
            rows.Select((_, i) => (double)(rows.Length - 1 - i)).ToArray(),
            rows.Select(r => r.Constant).ToArray());
        string pct = (delta * 100).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture);
        plt.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = $"constant -{pct}%", FillColor = low });
        plt.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = $"constant +{pct}%", FillColor = high });
        plt.ShowLegend();
        plt.Title($"{figure.Figure} ({figure.Baseline:0.##} at baseline; {subtitle})");
        plt.XLabel(figure.IsPercentage ? "change (points)" : "change (% of baseline)");
        int height = Math.Max(Plots.Height, 120 + 28 * rows.Length);
        if (path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
        {
            plt.SaveSvg(path, Plots.Width, height);
        }
        else
        {
            plt.SavePng(path, Plots.Width, height);
        }
    }
}
